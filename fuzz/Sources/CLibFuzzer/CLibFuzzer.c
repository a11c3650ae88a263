// Empty: CLibFuzzer is a header (include/CLibFuzzer.h); libFuzzer itself comes from -sanitize=fuzzer.
