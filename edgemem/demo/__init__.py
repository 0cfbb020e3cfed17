"""The HAR demo: a browser page running the C runtime in WebAssembly, a terminal view and (firmware/apps) a
Cortex-M4 build; `edgemem demo har [--serve]`."""
