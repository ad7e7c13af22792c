{
  "targets": [
    {
      "target_name": "splice",
      "sources": ["src/splice.cc"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fexceptions"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
