"""Tests of the fake Close: that it follows the API docs, and every way it may differ."""
