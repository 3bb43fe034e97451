//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package store

import (
	"fmt"
	"os"
)

// Elsewhere Badger's own directory lock is the only guard against a second
// process, and free space is not checked.
func lockDir(string) (*os.File, error) { return nil, nil }

func unlockDir(*os.File) {}

func checkFree(string, uint64) error { return nil }

func dirError(dir string, err error) error { return fmt.Errorf("store: %s: %w", dir, err) }
