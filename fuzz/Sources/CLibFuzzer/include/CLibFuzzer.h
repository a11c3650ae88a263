// Why this exists: SwiftPM gives every executable its own `main` (it links `main` to the module's
// entry point), so libFuzzer's `main` is never used. Each fuzz target's main.swift calls
// libFuzzer's documented driver entry instead, which needs this C declaration.
// See https://llvm.org/docs/LibFuzzer.html ("Using libFuzzer as a library").
#ifndef CLIBFUZZER_H
#define CLIBFUZZER_H
#include <stddef.h>
#include <stdint.h>

/// libFuzzer's driver: parses its flags from argv and runs `callback` on each input.
int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));

#endif
