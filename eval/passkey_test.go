package eval

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

func TestPasskeyPromptsLandmarkLayout(t *testing.T) {
	cfg := DefaultPasskey()
	cfg.Lengths = []int{400, 1000}
	cfg.Depths = []float64{0, 0.5, 1}
	cfg.Samples = 2
	ps, err := PasskeyPrompts(Bytes{}, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2*3*2 {
		t.Fatalf("got %d prompts", len(ps))
	}
	for _, p := range ps {
		lines := strings.Split(p.Text, "\n")
		if len(lines) != 5 || lines[0] != passkeyTask || lines[4] != passkeyQuestion {
			t.Fatalf("layout: %q", p.Text)
		}
		want := "The pass key is " + p.Answer + ". Remember it. " + p.Answer + " is the pass key."
		if lines[2] != want {
			t.Fatalf("needle line %q, want %q", lines[2], want)
		}
		// Fits, and uses the room: within a filler sentence of the budget.
		budget := p.Length - PasskeyMaxNew
		if p.Tokens > budget || p.Tokens < budget-5 {
			t.Errorf("length %d depth %g: %d tokens for budget %d", p.Length, p.Depth, p.Tokens, budget)
		}
		filler := len(lines[1]) + len(lines[3])
		if got := float64(len(lines[1])) / float64(filler); got < p.Depth-0.01 || got > p.Depth+0.01 {
			t.Errorf("depth %g: prefix share %.3f", p.Depth, got)
		}
	}
	again, _ := PasskeyPrompts(Bytes{}, cfg, "")
	if !reflect.DeepEqual(ps, again) {
		t.Fatal("not deterministic")
	}
	// A cell's key does not depend on the rest of the grid.
	cfg.Lengths = []int{1000}
	sub, _ := PasskeyPrompts(Bytes{}, cfg, "")
	if sub[0].Answer != ps[6].Answer || sub[0].Text != ps[6].Text {
		t.Error("cell changed with the grid")
	}
	cfg.Lengths = []int{50}
	if _, err := PasskeyPrompts(Bytes{}, cfg, ""); err == nil {
		t.Error("length 50: want error")
	}
}

func TestNIAHPromptsDistractors(t *testing.T) {
	cfg := DefaultPasskey()
	cfg.Task = "niah"
	cfg.Lengths = []int{2000}
	cfg.Depths = []float64{0.3}
	cfg.Samples = 3
	cfg.Distractors = 3
	ps, err := PasskeyPrompts(Bytes{}, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if len(p.Answer) != 7 {
			t.Fatalf("answer %q", p.Answer)
		}
		needle := "The special magic Singapore number is: " + p.Answer + "."
		if strings.Count(p.Text, needle) != 1 {
			t.Fatalf("needle missing: %q", p.Text)
		}
		if n := strings.Count(p.Text, " number is: "); n != 4 {
			t.Fatalf("%d needles, want 1 + 3 distractors", n)
		}
		if !strings.HasSuffix(p.Text, "The special magic Singapore number is:") {
			t.Fatalf("question tail: %q", p.Text[len(p.Text)-60:])
		}
		if p.Tokens > 2000-PasskeyMaxNew {
			t.Fatalf("%d tokens", p.Tokens)
		}
	}
}

func TestScorePasskey(t *testing.T) {
	cases := []struct {
		out, key string
		want     bool
	}{
		{" 12345.", "12345", true},
		{" 12345. 999", "12345", true},
		{" 999 12345", "12345", false},
		{" 123456", "12345", false},
		{" the key", "12345", false},
		{"\n 7", "7", true},
	}
	for _, c := range cases {
		if got := ScorePasskey(c.out, c.key); got != c.want {
			t.Errorf("ScorePasskey(%q, %q) = %v", c.out, c.key, got)
		}
	}
}

func TestPasskeyTableAndHeatmap(t *testing.T) {
	recs := []PasskeyRecord{
		{PasskeyPrompt: PasskeyPrompt{Length: 1024, Depth: 0}, Correct: true},
		{PasskeyPrompt: PasskeyPrompt{Length: 1024, Depth: 0}, Correct: false},
		{PasskeyPrompt: PasskeyPrompt{Length: 1024, Depth: 1}, Correct: true},
		{PasskeyPrompt: PasskeyPrompt{Length: 2048, Depth: 0}, Correct: false},
		{PasskeyPrompt: PasskeyPrompt{Length: 2048, Depth: 1}, Correct: false},
	}
	g := PasskeyTable(recs, []int{1024, 2048}, []float64{0, 1})
	if want := [][]float64{{50, 100}, {0, 0}}; !reflect.DeepEqual(g.Acc, want) {
		t.Fatalf("acc %v, want %v", g.Acc, want)
	}
	md := g.Table("t").Markdown()
	if !strings.Contains(md, "| 1024 | 50 | 100 | 75.0 |") {
		t.Fatalf("table:\n%s", md)
	}
	m := PasskeyMetrics("passkey", recs)
	if m["passkey_acc"].Value != 40 || math.Abs(m["passkey_acc@1024"].Value-100*2.0/3) > 1e-9 || m["passkey_acc@2048"].N != 2 {
		t.Fatalf("metrics %v", m)
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "heat.png")
	if err := PasskeyHeatmap(p, "passkey", g); err != nil {
		t.Fatal(err)
	}
	b1, _ := os.ReadFile(p)
	if !bytes.HasPrefix(b1, []byte("\x89PNG")) {
		t.Fatal("not a PNG")
	}
	if err := PasskeyHeatmap(p, "passkey", g); err != nil {
		t.Fatal(err)
	}
	if b2, _ := os.ReadFile(p); !bytes.Equal(b1, b2) {
		t.Fatal("PNG not byte-identical across runs")
	}
}

// The kv task states one object's code in the filler (the corpus's recall
// phrasing) and ends with the recall question; distractors are other
// objects' codes.
func TestKVPrompts(t *testing.T) {
	cfg := DefaultPasskey()
	cfg.Task, cfg.Lengths, cfg.Depths, cfg.Samples, cfg.Distractors = "kv", []int{300, 800}, []float64{0, 0.5, 1}, 3, 2
	ps, err := PasskeyPrompts(Bytes{}, cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 2*3*3 {
		t.Fatalf("got %d prompts", len(ps))
	}
	q := regexp.MustCompile(`What is the code of the (\w+ \w+)\? The code of the (\w+ \w+) is$`)
	for _, p := range ps {
		m := q.FindStringSubmatch(p.Text)
		if m == nil || m[1] != m[2] {
			t.Fatalf("prompt does not end with the recall question: %q", p.Text[max(0, len(p.Text)-120):])
		}
		if len(p.Answer) != 4 || !strings.Contains(p.Text, "The code of the "+m[1]+" is "+p.Answer+".") {
			t.Fatalf("answer %q not stated for %q", p.Answer, m[1])
		}
		if n := strings.Count(p.Text, "The code of the "); n != 1+2+1 {
			t.Errorf("%d code statements (want target + 2 distractors + question)", n)
		}
		if p.Tokens > p.Length-PasskeyMaxNew {
			t.Errorf("length %d: %d tokens", p.Length, p.Tokens)
		}
	}
	if !ScorePasskey(" "+ps[0].Answer+". The", ps[0].Answer) {
		t.Error("a correct continuation scored wrong")
	}
}
