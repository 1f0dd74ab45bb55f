package progress

import (
	"bytes"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLine(t *testing.T) {
	tests := []struct {
		name        string
		done, total int64
		elapsed     time.Duration
		final       bool
		want        []string
	}{
		{"half with eta", 50, 100, 10 * time.Second, false, []string{"[############............]", " 50.0%", "50/100 docs", "5 docs/s", "ETA 10s"}},
		{"unknown total", 12345, 0, 2 * time.Second, false, []string{"12.3k docs", "6172 docs/s", "elapsed 2s"}},
		{"summary", 100, 100, 4 * time.Second, true, []string{"100.0%", "25 docs/s", "done in 4s"}},
	}
	for _, tc := range tests {
		got := Line("prepare", tc.done, tc.total, "docs", tc.elapsed, tc.final)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("%s: %q lacks %q", tc.name, got, w)
			}
		}
		if tc.final && strings.Contains(got, "ETA") {
			t.Errorf("%s: summary has ETA: %q", tc.name, got)
		}
	}
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestPeriodicLinesWhenNotTerminal(t *testing.T) {
	var out syncBuf
	b := New("mix", 1000, Options{Out: &out, Interval: 20 * time.Millisecond, Unit: "tokens"})
	for i := 0; i < 10; i++ {
		b.Add(100)
		time.Sleep(10 * time.Millisecond)
	}
	b.Note("fill 99.7%")
	b.Done()
	b.Done() // idempotent
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) < 2 {
		t.Fatalf("want periodic lines and a summary, got %q", out.String())
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, "1000/1000 tokens") || !strings.Contains(last, "done in") || !strings.Contains(last, "fill 99.7%") {
		t.Fatalf("summary line %q", last)
	}
	if strings.Contains(out.String(), "\r") {
		t.Fatal("carriage returns written to a non-terminal")
	}
}

func TestHuman(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 999: "999", 12000: "12.0k", 2.5e6: "2.50M", 3e9: "3.00G", 1.25: "1.2"} {
		if got := Human(in); got != want {
			t.Errorf("Human(%v) = %q, want %q", in, got, want)
		}
	}
}
