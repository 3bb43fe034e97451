//go:build linux || darwin || freebsd || netbsd || openbsd

package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an exclusive advisory lock on dir, so a second process (or a
// second Open in this one) fails with ErrLocked before touching the database.
// The kernel drops the lock when the process dies, so kill -9 leaves no stale lock.
func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, dirError(dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrLocked, dir)
		}
		return nil, fmt.Errorf("store: lock %s: %w", dir, err)
	}
	return f, nil
}

func unlockDir(f *os.File) {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}

// statfs is a variable so tests can simulate a full disk.
var statfs = func(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return uint64(st.Bavail) * uint64(st.Bsize), nil
}

// checkFree fails with ErrDiskFull when dir's file system has less than need
// bytes available to unprivileged users.
func checkFree(dir string, need uint64) error {
	free, err := statfs(dir)
	if err != nil {
		return fmt.Errorf("store: statfs %s: %w", dir, err)
	}
	if free < need {
		return fmt.Errorf("%w: %d bytes free in %s, need %d", ErrDiskFull, free, dir, need)
	}
	return nil
}

// dirError explains a failure to create or write the store's files.
func dirError(dir string, err error) error {
	if errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("%w: %s: %w", ErrReadOnly, dir, err)
	}
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: %s: %w", ErrDiskFull, dir, err)
	}
	return fmt.Errorf("store: %s: %w", dir, err)
}
