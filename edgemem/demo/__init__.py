"""The HAR demo: a browser page running the C runtime in WebAssembly (har_site, serve), a terminal view (terminal,
over the runtime through ctypes) and the Cortex-M4 firmware demo (har_firmware, firmware/apps/har_demo);
`edgemem demo har [--serve]`, `make firmware-demo`."""
