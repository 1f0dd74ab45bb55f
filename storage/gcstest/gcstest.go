// Package gcstest starts an in-process fake-gcs-server for tests of code that
// reads and writes gs:// paths, optionally failing some requests with 503 to
// exercise retries. It sets STORAGE_EMULATOR_HOST for the test, which both
// the storage package and Beam's gs filesystem honour.
package gcstest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Server is a running fake GCS.
type Server struct {
	*fakestorage.Server
	http *httptest.Server

	mu       sync.Mutex
	failNext int // fail this many upcoming requests with 503
	every    int // and every Nth request after that (0 = never)
	count    int
	failed   atomic.Int64
}

// Start starts a fake GCS with the given buckets and points
// STORAGE_EMULATOR_HOST at it for the rest of the test.
func Start(t testing.TB, buckets ...string) *Server {
	t.Helper()
	fs, err := fakestorage.NewServerWithOptions(fakestorage.Options{
		NoListener: true,
		Scheme:     "http",
		// Reads go to the public host; it must match the host we serve on
		// (the default, storage.googleapis.com, makes object reads fail).
		PublicHost: "127.0.0.1",
		Writer:     io.Discard,
	})
	if err != nil {
		t.Fatalf("gcstest: start fake-gcs-server: %v", err)
	}
	s := &Server{Server: fs}
	h := fs.HTTPHandler()
	s.http = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.shouldFail() {
			s.failed.Add(1)
			http.Error(w, "injected 503 by gcstest", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { s.http.Close(); fs.Stop() })
	for _, b := range buckets {
		fs.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: b})
	}
	t.Setenv("STORAGE_EMULATOR_HOST", strings.TrimPrefix(s.http.URL, "http://"))
	return s
}

// FailRequests makes the next n requests, and then every everyNth request
// (0 = none), fail with HTTP 503.
func (s *Server) FailRequests(n, everyNth int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.failNext, s.every, s.count = n, everyNth, 0
}

// Failed returns how many requests were failed on purpose.
func (s *Server) Failed() int64 { return s.failed.Load() }

func (s *Server) shouldFail() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failNext > 0 {
		s.failNext--
		return true
	}
	if s.every > 0 {
		s.count++
		return s.count%s.every == 0
	}
	return false
}
