package pipelines

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTokenizeOrderedFailingSink: a sink that fails must end the run with
// its error, not leave a batch that no worker will finish (the reader sent
// it for ordering, then saw the cancellation before handing it to a worker).
func TestTokenizeOrderedFailingSink(t *testing.T) {
	tok, err := loadTokenizer(context.Background(), testTokenizer)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Repeat("a sentence that takes the tokenizer a little while. ", 40)
	read := func(e Emit) (int64, error) {
		for i := range 20000 {
			if err := e.Doc(Document{ID: fmt.Sprint(i), Text: text}); err != nil {
				return int64(i), err
			}
		}
		return 20000, nil
	}
	steps := []Step{sanitiseStep(), tokenizeStep(tok)}
	boom := errors.New("disk full")
	for _, workers := range []int{1, 2, 4} {
		for _, failAt := range []int{0, 700, 3000} {
			n := 0
			done := make(chan error, 1)
			go func() {
				_, err := runChain(context.Background(), read, steps, workers, func(*Doc) error {
					if n == failAt {
						return boom
					}
					n++
					return nil
				})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, boom) {
					t.Fatalf("workers %d, fail at %d: got %v, want the sink's error", workers, failAt, err)
				}
			case <-time.After(20 * time.Second):
				t.Fatalf("workers %d, fail at %d: hung after the sink failed", workers, failAt)
			}
		}
	}
}
