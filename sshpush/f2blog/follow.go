package f2blog

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/banpush/banpush/sshpush/f2b"
	"github.com/banpush/banpush/sshpush/logtail"
)

// DefaultMaxBatch is how many failures a batch holds at most when
// Config.MaxBatch is not set.
const DefaultMaxBatch = 1000

// maxLines bounds the lines, of every kind, one Read reads: a Read over a
// large log of other lines ends in bounded time, with More set.
const maxLines = 100000

// lockTimeout bounds the wait for another Follower on the same cursor.
const lockTimeout = 10 * time.Second

// ErrStale is returned by Commit for a batch not read from the cursor as
// it now stands: one committed already, or read before another.
var ErrStale = errors.New("f2blog: the batch was not read from the current cursor")

// Config says what to follow. Everything in it is trusted: it comes from
// root's command line.
type Config struct {
	// Log is fail2ban's log, its logtarget (f2b.Client.LogTarget): an
	// absolute path; LOG.1 beside it is where logrotate puts it.
	Log string
	// Cursor is the cursor file, in a directory of root's that nobody
	// else may write (logtail.LockCursor); CURSOR.lock beside it keeps a
	// second Follower of it out.
	Cursor string
	// Jails are the jails whose failures are read, valid fail2ban jail
	// names, at least one; the failures of other jails are passed over.
	Jails []string
	// MaxBatch bounds the failures of a batch; zero or less means
	// DefaultMaxBatch.
	MaxBatch int
	// MaxAge: failures whose time is further than this from now are
	// passed over (after the log was rotated twice while nothing
	// followed it, both files are read from their start). Zero or less:
	// no bound.
	MaxAge time.Duration
	Now    func() time.Time
}

// Follower reads the failures fail2ban logs, after a cursor it keeps in a
// file. It is for one goroutine.
type Follower struct {
	cfg   Config
	jails map[string]bool
	lock  *os.File
	cur   logtail.Cursor // as saved
	first bool
}

// Batch is the failures of one Read, and where they end.
type Batch struct {
	Failures []Failure
	Start    logtail.Start // where the read began, and why there
	Lines    int           // lines read
	Skipped  int           // lines passed over: longer than MaxLine, or cut short
	Old      int           // failures passed over for MaxAge
	// More: the batch is full (MaxBatch failures, or as many lines as
	// one Read reads); the log has more, to Read at once.
	More bool

	from, end logtail.Cursor
}

// Open starts following: it takes the cursor's lock, which it holds until
// Close, and loads the cursor. At the first start, with no cursor file,
// the cursor is put at the end of the log, after its last whole line, and
// saved at once: the failures fail2ban logged before are not read (they
// are old, and fail2ban has dealt with them), those it logs from then on
// are, even if the process dies before its first Commit.
func Open(ctx context.Context, cfg Config) (*Follower, error) {
	if len(cfg.Jails) == 0 {
		return nil, errors.New("f2blog: no jail to follow")
	}
	jails := make(map[string]bool, len(cfg.Jails))
	for _, j := range cfg.Jails {
		if !f2b.ValidJail(j) {
			return nil, errors.New("f2blog: invalid jail name")
		}
		jails[j] = true
	}
	if cfg.MaxBatch <= 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	lock, err := logtail.LockCursor(ctx, cfg.Cursor, lockTimeout)
	if err != nil {
		return nil, err
	}
	f := &Follower{cfg: cfg, jails: jails, lock: lock}
	cur, err := logtail.LoadCursor(cfg.Cursor)
	if err == nil && cur == nil {
		var end logtail.Cursor
		if end, err = logtail.End(cfg.Log, MaxLine); err == nil {
			err = logtail.SaveCursor(cfg.Cursor, end)
		}
		cur, f.first = &end, true
	}
	if err != nil {
		lock.Close()
		return nil, err
	}
	f.cur = *cur
	return f, nil
}

// FirstStart reports whether Open found no cursor and started at the end
// of the log.
func (f *Follower) FirstStart() bool { return f.first }

// Read reads the failures of the jails logged after the cursor, up to
// MaxBatch, across a rotation of the log. It does not move the cursor
// (Commit does, once the batch is handed on): until then, every Read
// reads the same failures again. A batch with no failure may still have
// read lines, which Commit passes.
func (f *Follower) Read() (Batch, error) {
	cur := f.cur
	r, err := logtail.Open(f.cfg.Log, &cur, MaxLine)
	if err != nil {
		return Batch{}, err
	}
	defer r.Close()
	b := Batch{Start: r.Start, from: cur, end: cur}
	now := f.cfg.Now()
	for {
		if len(b.Failures) >= f.cfg.MaxBatch || b.Lines >= maxLines {
			b.More = true
			return b, nil
		}
		line, next, err := r.Next()
		switch {
		case err == io.EOF:
			if next.Skip {
				b.end = next // inside an unfinished long line: read once
			}
			return b, nil
		case errors.Is(err, logtail.ErrSkipped):
			b.Lines++
			b.Skipped++
			b.end = next
			continue
		case err != nil:
			return Batch{}, fmt.Errorf("f2blog: %w", err)
		}
		b.Lines++
		b.end = next
		fl, ok := ParseFound(line)
		if !ok || !f.jails[fl.Jail] {
			continue
		}
		if age := now.Sub(fl.Time); f.cfg.MaxAge > 0 && (age > f.cfg.MaxAge || -age > f.cfg.MaxAge) {
			b.Old++
			continue
		}
		b.Failures = append(b.Failures, fl)
	}
}

// Commit moves the cursor past b, once its failures are handed on, and
// saves it (atomically). b must be the last batch Read returned; a batch
// read before the cursor last moved is ErrStale.
func (f *Follower) Commit(b Batch) error {
	if b.from != f.cur {
		return ErrStale
	}
	if b.end == f.cur {
		return nil
	}
	if err := logtail.SaveCursor(f.cfg.Cursor, b.end); err != nil {
		return err
	}
	f.cur = b.end
	return nil
}

// Close releases the cursor's lock.
func (f *Follower) Close() error { return f.lock.Close() }
