"""edgemem: memory-based spiking models from training to a microcontroller.

The Python API (`edgemem.api`, documented there):

    import edgemem

    trained = edgemem.train("models/har_elm/recipe.yaml", epochs=1, out="/tmp/elm")
    exported = edgemem.export(trained.checkpoint, "/tmp/elm_export", to=["onnx", "c"])
    report = edgemem.verify(exported.folder, m4_windows=2)
    print(report.bit_exact, report.accuracy, report.flash_bytes, report.ram_bytes)

`train`, `export`, `verify`, `quantize` and `plan` load on first use, so `import edgemem` imports neither torch
nor the pipeline.
"""

__version__ = "0.1.0"

__all__ = ["__version__", "train", "export", "verify", "quantize", "plan"]

_API = ("train", "export", "verify", "quantize", "plan")


def __getattr__(name: str):  # PEP 562: the API functions load on first use
    if name in _API:
        # importlib, not an import statement: the root package sits above every layer of the import-linter
        # contract, and a static `edgemem -> edgemem.api` import would put api above tool (which reads __version__)
        import importlib

        value = getattr(importlib.import_module("edgemem.api"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'edgemem' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
