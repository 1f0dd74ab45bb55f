// Package progress shows how long work is going: items done, rate and ETA.
// On a terminal it redraws one line; otherwise (CI logs, files) it prints a
// periodic line, so logs stay readable. It ends with a one-line summary.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Bar tracks one long-running job. Safe for concurrent Add.
type Bar struct {
	label string
	unit  string
	total int64 // 0 when unknown
	done  atomic.Int64
	start time.Time
	out   io.Writer
	tty   bool
	every time.Duration

	mu      sync.Mutex
	stop    chan struct{}
	stopped chan struct{}
	note    string
	closed  bool
	now     func() time.Time
}

// Options configure a Bar; the zero value writes to stderr.
type Options struct {
	Out      io.Writer     // default os.Stderr
	Interval time.Duration // line interval when not a terminal; default 10s (LONGCTX_PROGRESS_INTERVAL)
	Unit     string        // e.g. "docs", "tokens", "steps"
}

// New starts a bar for total items (0 if unknown).
func New(label string, total int64, opt Options) *Bar {
	b := &Bar{label: label, unit: opt.Unit, total: total, out: opt.Out, every: opt.Interval, now: time.Now}
	if b.out == nil {
		b.out = os.Stderr
	}
	if f, ok := b.out.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		b.tty = true
	}
	if b.every == 0 {
		b.every = 10 * time.Second
		if d, err := time.ParseDuration(os.Getenv("LONGCTX_PROGRESS_INTERVAL")); err == nil && d > 0 {
			b.every = d
		}
	}
	if b.tty {
		b.every = 200 * time.Millisecond
	}
	b.start = b.now()
	b.stop, b.stopped = make(chan struct{}), make(chan struct{})
	go b.loop()
	return b
}

// Add records n more items done.
func (b *Bar) Add(n int64) { b.done.Add(n) }

// Set records the absolute count done.
func (b *Bar) Set(n int64) { b.done.Store(n) }

// Note sets a short status shown after the counters (e.g. "loss 3.21").
func (b *Bar) Note(s string) {
	b.mu.Lock()
	b.note = s
	b.mu.Unlock()
}

func (b *Bar) loop() {
	defer close(b.stopped)
	t := time.NewTicker(b.every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.print(false)
		}
	}
}

// Done stops the bar and prints the summary line.
func (b *Bar) Done() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	b.mu.Unlock()
	close(b.stop)
	<-b.stopped
	b.print(true)
}

func (b *Bar) print(final bool) {
	b.mu.Lock()
	note := b.note
	b.mu.Unlock()
	line := Line(b.label, b.done.Load(), b.total, b.unit, b.now().Sub(b.start), final)
	if note != "" {
		line += "  " + note
	}
	switch {
	case b.tty && final:
		fmt.Fprintf(b.out, "\r\033[K%s\n", line)
	case b.tty:
		fmt.Fprintf(b.out, "\r\033[K%s", line)
	default:
		fmt.Fprintln(b.out, line)
	}
}

// Line formats one progress or summary line. It is a pure function so the
// format is testable.
func Line(label string, done, total int64, unit string, elapsed time.Duration, final bool) string {
	var sb strings.Builder
	sb.WriteString(label)
	sb.WriteString(": ")
	rate := 0.0
	if s := elapsed.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	u := ""
	if unit != "" {
		u = " " + unit
	}
	if total > 0 {
		frac := float64(done) / float64(total)
		if frac > 1 {
			frac = 1
		}
		const width = 24
		fill := int(frac * width)
		fmt.Fprintf(&sb, "[%s%s] %5.1f%% %s/%s%s", strings.Repeat("#", fill), strings.Repeat(".", width-fill),
			100*frac, Human(float64(done)), Human(float64(total)), u)
	} else {
		fmt.Fprintf(&sb, "%s%s", Human(float64(done)), u)
	}
	fmt.Fprintf(&sb, "  %s%s/s", Human(rate), u)
	if final {
		fmt.Fprintf(&sb, "  done in %s", elapsed.Round(time.Millisecond))
	} else {
		fmt.Fprintf(&sb, "  elapsed %s", elapsed.Round(time.Second))
		if total > 0 && rate > 0 && done < total {
			eta := time.Duration(float64(total-done) / rate * float64(time.Second))
			fmt.Fprintf(&sb, "  ETA %s", eta.Round(time.Second))
		}
	}
	return sb.String()
}

// Human renders a count with a k/M/G suffix.
func Human(x float64) string {
	switch {
	case x >= 1e9:
		return fmt.Sprintf("%.2fG", x/1e9)
	case x >= 1e6:
		return fmt.Sprintf("%.2fM", x/1e6)
	case x >= 1e4:
		return fmt.Sprintf("%.1fk", x/1e3)
	case x == float64(int64(x)) || x >= 100:
		return fmt.Sprintf("%.0f", x)
	default:
		return fmt.Sprintf("%.1f", x)
	}
}
