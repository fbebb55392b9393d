package fsutil

import "errors"

// ErrNoAttributes is returned where the file system (or the system) has no
// append-only attribute.
var ErrNoAttributes = errors.New("the file system has no append-only attribute")
