package receive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/bits"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/banpush/banpush/sshpush/fsutil"
	"github.com/banpush/banpush/sshpush/record"
	"golang.org/x/sys/unix"
)

// The token bucket of each peer lives in a small text file beside the log,
// LOG.state, one line per peer: "NAME MILLITOKENS UNIXNANOS ACCEPTED
// REFUSED LIMITED FAILURES FLEET", the last five counting the peer's
// records (Counters; lines of older versions have none or only the first
// three, and count the others from zero). The same file
// is the lock that serializes receivers of one log: it is locked before the
// bucket is read and unlocked after the log is written and the bucket saved.
// Only the receiving account may open it (0600, enforced at every open), so
// nobody else can hold that lock.
// The file is rewritten in place, because replacing it would break the lock
// of a receiver waiting on the old inode. A damaged file is not fatal: its
// unreadable lines are dropped, and those peers start with a full bucket.

const (
	// Room for maxStatePeers lines of the longest form (a 64-byte name,
	// three 19-digit counters and the bucket: about 150 bytes).
	maxStateBytes = 256 << 10
	maxStatePeers = 1000
	milli         = 1000
)

type stateFile struct {
	f     *os.File
	peers map[string]bucket
}

type bucket struct {
	milliTokens int64
	last        int64 // UnixNano of the last refill
	count       Counters
}

// Counters count a pushing peer's records since its line in LOG.state was
// made. They only grow, and are not fsynced: a crash may lose the last
// few counts. 'banpush status --prometheus' exports them.
type Counters struct {
	Accepted int64 // written to the log, or counted already (a quorum peer's repeat)
	Refused  int64 // refused by the policy: malformed, private, ignored, ...
	Limited  int64 // refused by the rate limit (an honest sender sends them again)
	Failures int64 // failures the peer reported and the fleet policy counted (its accepted fail records' counts)
	Fleet    int64 // fleet lines written on one of the peer's reports: its report completed a fleet ban
}

// add counts a batch's result.
func (c *Counters) add(r Result) {
	c.Accepted += int64(r.Accepted)
	c.Refused += int64(len(r.Refused) - r.Limited)
	c.Limited += int64(r.Limited)
	c.Failures += int64(r.Failures)
	c.Fleet += int64(r.Fleet)
}

func openState(ctx context.Context, path string) (*stateFile, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0o600)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, errors.New("opening rate-limit state: is a symbolic link")
		}
		return nil, fmt.Errorf("opening rate-limit state beside the log: %w", err)
	}
	f := os.NewFile(uintptr(fd), path)
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, errors.New("opening rate-limit state: not a regular file")
	}
	if fi.Mode().Perm()&0o077 != 0 {
		// Others who can open it could hold its lock and stop every
		// receiver of the log.
		if err := f.Chmod(0o600); err != nil {
			f.Close()
			return nil, fmt.Errorf("opening rate-limit state: readable by others and cannot be made private: %w", err)
		}
	}
	if err := fsutil.Lock(ctx, f); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking rate-limit state: %w", err)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStateBytes))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading rate-limit state: %w", err)
	}
	return &stateFile{f: f, peers: parseState(data)}, nil
}

func parseState(data []byte) map[string]bucket {
	peers := map[string]bucket{}
	for len(data) > 0 && len(peers) < maxStatePeers {
		var line []byte
		line, data, _ = bytes.Cut(data, []byte{'\n'})
		f := bytes.Fields(line)
		if len(f) != 3 && len(f) != 6 && len(f) != 8 || !record.ValidName(string(f[0])) {
			continue
		}
		var n [7]int64
		ok := true
		for i, w := range f[1:] {
			var err error
			n[i], err = strconv.ParseInt(string(w), 10, 64)
			ok = ok && err == nil && n[i] >= 0
		}
		if !ok {
			continue
		}
		peers[string(f[0])] = bucket{milliTokens: n[0], last: n[1], count: Counters{Accepted: n[2], Refused: n[3], Limited: n[4], Failures: n[5], Fleet: n[6]}}
	}
	return peers
}

// bucket returns peer's bucket refilled up to now. A peer not in the file
// starts full; so does one after any gap long enough to fill its bucket,
// however long (see refill). A clock that went back refills nothing.
func (s *stateFile) bucket(peer string, now time.Time, burst, perMinute int) bucket {
	limit := int64(burst) * milli
	t := now.UnixNano()
	b, ok := s.peers[peer]
	if !ok {
		return bucket{milliTokens: limit, last: t}
	}
	// Counters survive whatever happens to the tokens.
	b.milliTokens = min(b.milliTokens, limit) // a damaged file may say more
	if t > b.last {
		b.milliTokens = min(limit, b.milliTokens+refill(t-b.last, int64(perMinute), limit))
	}
	b.last = t
	return b
}

// refill is how many milli-tokens a gap of elapsed nanoseconds adds at
// perMinute tokens a minute, at most limit: elapsed * perMinute * 1000 /
// one minute, rounded down, exact for every gap (nanoseconds to centuries)
// and every rate Config.Check allows, because the product is taken in 128
// bits.
func refill(elapsed, perMinute, limit int64) int64 {
	if elapsed <= 0 || perMinute <= 0 || limit <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(elapsed), uint64(perMinute)*milli)
	if hi >= uint64(time.Minute) {
		return limit // the quotient does not even fit in 64 bits
	}
	q, _ := bits.Div64(hi, lo, uint64(time.Minute))
	if q >= uint64(limit) {
		return limit
	}
	return int64(q)
}

// ready says whether there is a token to spend.
func (b *bucket) ready() bool { return b.milliTokens >= milli }

// take spends one token if there is one.
func (b *bucket) take() bool {
	if b.milliTokens < milli {
		return false
	}
	b.milliTokens -= milli
	return true
}

func (s *stateFile) put(peer string, b bucket) { s.peers[peer] = b }

func (s *stateFile) save() error {
	names := make([]string, 0, len(s.peers))
	for n := range s.peers {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf []byte
	for _, n := range names {
		b := s.peers[n]
		c := b.count
		buf = fmt.Appendf(buf, "%s %d %d %d %d %d %d %d\n", n, b.milliTokens, b.last, c.Accepted, c.Refused, c.Limited, c.Failures, c.Fleet)
	}
	if _, err := s.f.WriteAt(buf, 0); err != nil {
		return err
	}
	// No fsync: after a crash a peer's bucket may be fuller than it
	// should be, which the log's own fsync does not need to prevent.
	return s.f.Truncate(int64(len(buf)))
}

func (s *stateFile) close() { s.f.Close() }

// ReadCounters returns the counters of every pushing peer from the state
// file beside the log at logPath, read without its lock (a receiver may be
// rewriting it: a line that does not parse is left out). A log with no
// state file has none.
func ReadCounters(logPath string) (map[string]Counters, error) {
	f, err := os.OpenFile(logPath+".state", os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]Counters{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("receive: reading the state beside the log: %w", err)
	}
	defer f.Close()
	// Root reads this (banpush status) in a directory the receiving
	// account writes: a second name for another file, made by the
	// account, must not have root parse that file.
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("receive: reading the state beside the log: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink != 1 {
		return nil, fmt.Errorf("receive: the state beside the log is not a regular file with one name (%d names): refusing to read it", st.Nlink)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxStateBytes))
	if err != nil {
		return nil, fmt.Errorf("receive: reading the state beside the log: %w", err)
	}
	out := map[string]Counters{}
	for name, b := range parseState(data) {
		out[name] = b.count
	}
	return out, nil
}
