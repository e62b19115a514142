"""Pytest plugins shared by every suite (process launchers for the project's services)."""
