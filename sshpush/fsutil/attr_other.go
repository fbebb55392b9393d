//go:build !linux

package fsutil

import (
	"fmt"
	"os"
)

// AppendOnly reports whether f has the append-only attribute: never, here.
func AppendOnly(f *os.File) (bool, error) {
	return false, fmt.Errorf("%s: %w", f.Name(), ErrNoAttributes)
}

// SetAppendOnly sets or clears f's append-only attribute: not here.
func SetAppendOnly(f *os.File, on bool) error {
	return fmt.Errorf("%s: %w", f.Name(), ErrNoAttributes)
}
