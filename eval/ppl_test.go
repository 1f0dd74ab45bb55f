package eval

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestPositionLossesBuckets(t *testing.T) {
	var pl PositionLosses
	pl.Add([]float32{1, 2, 3, 4})    // positions 1..4
	pl.Add([]float32{3, 4, 5, 6, 7}) // positions 1..5
	bs := pl.Buckets([]int{3, 5, 8, 100})
	want := []Bucket{
		{Lo: 1, Hi: 3, Loss: (1 + 2 + 3 + 4) / 4.0, Tokens: 4},
		{Lo: 3, Hi: 5, Loss: (3 + 4 + 5 + 6) / 4.0, Tokens: 4},
		{Lo: 5, Hi: 8, Loss: 7, Tokens: 1},
		{Lo: 8, Hi: 100},
	}
	for i := range want {
		if bs[i] != want[i] {
			t.Errorf("bucket %d = %+v, want %+v", i, bs[i], want[i])
		}
	}
	if math.Abs(bs[2].PPL()-math.Exp(7)) > 1e-9 {
		t.Error("ppl")
	}
	m := PPLMetrics(PPLResult{Losses: pl}, []int{3, 5, 8, 100})
	if m["loss"].Value != 35.0/9 || m["loss@1-3"].Value != 2.5 || m["loss@1-3"].HigherIsBetter {
		t.Errorf("metrics %+v", m)
	}
	if _, ok := m["loss@8-100"]; ok {
		t.Error("empty bucket reported")
	}
	curve := pl.Curve(5, 1000)
	if len(curve) != 5 || curve[0].Lo != 1 || curve[4].Hi != 6 {
		t.Errorf("curve %+v", curve)
	}
	p := filepath.Join(t.TempDir(), "ppl.png")
	if err := LossCurve(p, "loss", curve); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.HasPrefix(b, []byte("\x89PNG")) {
		t.Fatal("not a PNG")
	}
	if err := LossCurve(p, "loss", nil); err == nil {
		t.Error("empty curve: want error")
	}
}
