"""Thin Tornado handlers: parse, call one service function, serialise."""
