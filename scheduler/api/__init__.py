"""Takt's HTTP API (FastAPI): Azure Scheduler's ARM routes and operations endpoints."""

from scheduler.api.app import create_api

__all__ = ["create_api"]
