package logtail

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/banpush/banpush/sshpush/fsutil"
	"golang.org/x/sys/unix"
)

// tailLen is how many bytes before a cursor's offset its fingerprint
// covers: enough to hold a timestamp, so that another file (a copy made by
// copytruncate, a new log on a reused inode) is told apart from the one
// the cursor was in.
const tailLen = 128

// maxCursor bounds the cursor file read.
const maxCursor = 4096

// Cursor is where the last run stopped: a position in one file, named by
// device and inode, and a fingerprint of the bytes before it. A file
// "continues" the cursor when it holds those bytes at that offset.
type Cursor struct {
	Dev    uint64 `json:"dev"`
	Ino    uint64 `json:"ino"`
	Offset int64  `json:"offset"`
	Tail   string `json:"tail"` // hex SHA-256 of the up to tailLen bytes before Offset

	// Skip: Offset is inside a line longer than the Reader's bound that
	// had no newline yet, passed over up to Offset; the next read passes over
	// the rest of it, to its newline, before it reads a line. So the
	// bytes of an unfinished long line are read once, not at every run.
	Skip bool `json:"skip,omitempty"`
}

// LoadCursor reads the cursor file at path; a missing file is (nil, nil):
// no run has finished yet. The file is read without following a symbolic
// link, and must be a regular file.
func LoadCursor(path string) (*Cursor, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil, nil
	case errors.Is(err, unix.ELOOP):
		return nil, fmt.Errorf("logtail: cursor %s: is a symbolic link", path)
	case err != nil:
		return nil, fmt.Errorf("logtail: cursor %s: %w", path, err)
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("logtail: cursor %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxCursor))
	if err != nil {
		return nil, fmt.Errorf("logtail: cursor %s: %w", path, err)
	}
	var c Cursor
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil || c.Offset < 0 || !validTail(c.Tail) {
		return nil, fmt.Errorf("logtail: cursor %s: damaged (remove it to start again)", path)
	}
	return &c, nil
}

func validTail(s string) bool {
	b, err := hex.DecodeString(s)
	return err == nil && len(b) == sha256.Size
}

// SaveCursor replaces the cursor file at path atomically (0600 when new).
func SaveCursor(path string, c Cursor) error {
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	if err := fsutil.WriteAtomic(path, append(data, '\n'), 0o600); err != nil {
		return fmt.Errorf("logtail: cursor: %w", err)
	}
	return nil
}

// fingerprint is the Tail of a cursor whose last bytes before the offset
// are tail.
func fingerprint(tail []byte) string {
	s := sha256.Sum256(tail)
	return hex.EncodeToString(s[:])
}

// continues reports whether f holds the cursor's fingerprint right before
// its offset.
func continues(f *os.File, size int64, c *Cursor) bool {
	if c.Offset > size {
		return false
	}
	n := min(c.Offset, tailLen)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, c.Offset-n); err != nil {
		return false
	}
	return fingerprint(buf) == c.Tail
}
