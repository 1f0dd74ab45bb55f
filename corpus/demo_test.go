package corpus

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

func TestGenerateDemoDeterministic(t *testing.T) {
	a, b := t.TempDir(), t.TempDir()
	fa, err := GenerateCorpus(context.Background(), a, 7, 2)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := GenerateCorpus(context.Background(), b, 7, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(fa) != len(fb) {
		t.Fatalf("%d files vs %d", len(fa), len(fb))
	}
	for i := range fa {
		x, err := os.ReadFile(filepath.Join(a, fa[i].Path))
		if err != nil {
			t.Fatal(err)
		}
		y, err := os.ReadFile(filepath.Join(b, fb[i].Path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(x, y) {
			t.Errorf("%s differs between two runs with the same seed", fa[i].Path)
		}
	}
	other := t.TempDir()
	fo, err := GenerateCorpus(context.Background(), other, 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	x, _ := os.ReadFile(filepath.Join(a, fa[0].Path))
	y, _ := os.ReadFile(filepath.Join(other, fo[0].Path))
	if bytes.Equal(x, y) {
		t.Errorf("seeds 7 and 8 gave the same %s", fa[0].Path)
	}
}

var (
	factRe   = regexp.MustCompile(`The code of the (\w+ \w+) is (\d+)\.`)
	recallRe = regexp.MustCompile(`^What is the code of the (\w+ \w+)\? $`)
)

// TestBooksRecallFacts checks the recall structure the retrieval skill is
// learned from: every recall question in a book repeats, with the same
// phrasing, a value stated earlier in the same book; keys come back with
// new values; and the gaps span both a 256-token window and far beyond it.
func TestBooksRecallFacts(t *testing.T) {
	dir := t.TempDir()
	if _, err := GenerateDemo(context.Background(), dir, 1); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(dir, "dolma/books/books-0000.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(zr)
	sc.Buffer(nil, 1<<24)
	var recalls, short, long int
	values := map[string]map[string]bool{}
	for sc.Scan() {
		var doc struct {
			Text any `json:"text"`
		}
		if json.Unmarshal(sc.Bytes(), &doc) != nil {
			continue // the generator's deliberately malformed records
		}
		text, ok := doc.Text.(string)
		if !ok {
			continue
		}
		// Walk the facts in order: a statement opens a key, the question
		// that follows ("What is the code of the K? The code of the K is
		// V.") must give the open value.
		open := map[string]struct {
			v     string
			words int
		}{}
		for _, m := range factRe.FindAllStringSubmatchIndex(text, -1) {
			key, v := text[m[2]:m[3]], text[m[4]:m[5]]
			words := len(strings.Fields(text[:m[0]]))
			prefix := text[max(0, m[0]-len("What is the code of the ? ")-len(key)):m[0]]
			if recallRe.MatchString(prefix) {
				o, ok := open[key]
				if !ok {
					t.Fatalf("recall of %q at word %d with no open statement", key, words)
				}
				if o.v != v {
					t.Fatalf("recall of %q gives %s, stated %s", key, v, o.v)
				}
				recalls++
				if gap := words - o.words; gap < 150 {
					short++
				} else if gap > 800 {
					long++
				}
				delete(open, key)
				continue
			}
			if _, dup := open[key]; dup {
				t.Fatalf("key %q stated twice while open", key)
			}
			open[key] = struct {
				v     string
				words int
			}{v, words}
			if values[key] == nil {
				values[key] = map[string]bool{}
			}
			values[key][v] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if recalls < 200 || short < recalls/4 || long < 10 {
		t.Errorf("recalls %d, of which within 150 words %d, beyond 800 words %d: want many, both short and long", recalls, short, long)
	}
	reused := 0
	for _, vs := range values {
		if len(vs) > 1 {
			reused++
		}
	}
	if reused < len(values)/2 {
		t.Errorf("only %d of %d keys come back with a new value: the value could be memorised", reused, len(values))
	}
}
