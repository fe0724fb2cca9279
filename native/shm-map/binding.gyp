{
  "targets": [
    {
      "target_name": "shm_map",
      "sources": ["shm_map.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
