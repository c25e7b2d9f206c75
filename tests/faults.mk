# tests/faults.mk — faults: files changing under a map, full and read-only disks, kill -9.
