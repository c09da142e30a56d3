//go:build !linux

package main

import "errors"

const schedBatchSupported = false

func setSchedBatch() (int, error) { return 0, errors.New("SCHED_BATCH is Linux's") }
