"""Demos built on the shipped models (firmware/apps/har_demo: har_firmware)."""
