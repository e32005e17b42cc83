"""Emitters for the ops added for full Core ATen coverage (indexing, scatter, math, ...)."""

from __future__ import annotations
