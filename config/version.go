package config

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"runtime/debug"
	"sync"
)

// VCS returns the commit the running binary was built from and whether its
// tree had uncommitted changes; rev is "" without a VCS stamp (go run,
// go test, -buildvcs=false, a copy without .git).
func VCS() (rev string, modified bool) {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "", false
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	return rev, modified
}

var codeVersion = sync.OnceValue(func() string {
	if rev, modified := VCS(); rev != "" && !modified {
		return "vcs:" + rev
	}
	// No VCS stamp (go run, go test, -buildvcs=false) or a dirty tree:
	// the binary itself stands for the code. Go builds are reproducible,
	// so the same sources give the same hash.
	if exe, err := os.Executable(); err == nil {
		if f, err := os.Open(exe); err == nil {
			defer f.Close()
			h := sha256.New()
			if _, err := io.Copy(h, f); err == nil {
				return "bin:" + hex.EncodeToString(h.Sum(nil))[:16]
			}
		}
	}
	return "unknown"
})

// CodeVersion names the code that produces outputs, for lineage hashes: a
// reader or trainer fix must not silently reuse outputs of older code. It
// is the VCS revision of a clean stamped build, else a hash of the running
// binary.
func CodeVersion() string { return codeVersion() }
