package trainer

import (
	"runtime/debug"
	"strings"
	"testing"

	"longctx/config"
)

func TestParseByteSize(t *testing.T) {
	for _, c := range []struct {
		in   string
		want int64
	}{
		{"3.5GiB", 3758096384}, {"800MiB", 800 << 20}, {"4GB", 4e9}, {"1048576", 1 << 20},
		{"12 KiB", 12 << 10}, {"2TB", 2e12}, {"512B", 512},
	} {
		got, err := ParseByteSize(c.in)
		if err != nil || got != c.want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "GiB", "-1GiB", "0", "3.5 gigs", "1e30TB"} {
		if got, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) = %d, want an error", bad, got)
		}
	}
}

func TestMemoryLimitSources(t *testing.T) {
	t.Setenv("GOMEMLIMIT", "")
	if l, src, err := memoryLimit("3GiB"); err != nil || l != 3<<30 || src != "memory_limit" {
		t.Errorf("memory_limit 3GiB: %d %q %v", l, src, err)
	}
	if _, _, err := memoryLimit("lots"); err == nil {
		t.Error("memory_limit \"lots\": no error")
	}
	total, err := physicalMemory()
	if err != nil {
		t.Fatalf("physicalMemory: %v", err) // the tests run on Linux
	}
	if l, _, _ := memoryLimit(""); l != total/5*4 {
		t.Errorf("default limit %d, want 80%% of %d", l, total)
	}
	t.Setenv("GOMEMLIMIT", "10GiB")
	if l, src, _ := memoryLimit(""); l != 0 || src != "GOMEMLIMIT" {
		t.Errorf("with GOMEMLIMIT set: %d %q, want the runtime's own", l, src)
	}
}

func TestApplyMemoryLimitRestores(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	restore, desc, err := applyMemoryLimit("1GiB")
	if err != nil {
		t.Fatal(err)
	}
	if got := debug.SetMemoryLimit(-1); got != 1<<30 {
		t.Errorf("limit while running %d, want %d (%s)", got, 1<<30, desc)
	}
	restore()
	if got := debug.SetMemoryLimit(-1); got != before {
		t.Errorf("limit after restore %d, want %d", got, before)
	}
}

// memory_limit is operational: a run resumed with another limit (or a
// config written before the setting existed) must hash the same.
func TestResumeHashIgnoresMemoryLimit(t *testing.T) {
	c := DefaultTrainConfig()
	c.ModelConfig = "m.yaml"
	a, err := resumeHash(c)
	if err != nil {
		t.Fatal(err)
	}
	c.MemoryLimit = "3GiB"
	if b, _ := resumeHash(c); a != b {
		t.Errorf("resume hash changed with memory_limit: %s vs %s", a, b)
	}
	if data, err := config.Marshal(DefaultTrainConfig()); err != nil || strings.Contains(string(data), "memory_limit") {
		t.Errorf("an unset memory_limit is written into configs (it would change their hashes): %v\n%s", err, data)
	}
}
