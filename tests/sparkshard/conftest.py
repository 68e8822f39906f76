"""The sparkshard tests. Helper modules in this folder (``concurrent_writers``,
``golden_dataset``) are importable by the tests below it."""
