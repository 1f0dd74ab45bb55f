package eval

import (
	"math"
	"math/big"
	"strconv"
	"testing"
)

// exactMcNemar sums binomial probabilities exactly (big rationals), as the
// independent reference for McNemarExact.
func exactMcNemar(b, c int) float64 {
	n := b + c
	k := min(b, c)
	sum := new(big.Int)
	for i := 0; i <= k; i++ {
		sum.Add(sum, new(big.Int).Binomial(int64(n), int64(i)))
	}
	p := new(big.Rat).SetFrac(new(big.Int).Mul(sum, big.NewInt(2)), new(big.Int).Lsh(big.NewInt(1), uint(n)))
	f, _ := p.Float64()
	return math.Min(1, f)
}

func TestMcNemarExactMatchesBinomialSums(t *testing.T) {
	for _, bc := range [][2]int{{12, 0}, {30, 14}, {14, 30}, {5, 5}, {1, 0}, {60, 41}, {0, 0}} {
		want := 1.0
		if bc[0]+bc[1] > 0 {
			want = exactMcNemar(bc[0], bc[1])
		}
		if got := McNemarExact(bc[0], bc[1]); math.Abs(got-want) > 1e-12*math.Max(want, 1e-300) && math.Abs(got-want) > 1e-15 {
			t.Errorf("McNemarExact(%d, %d) = %.15g, exact sum %.15g", bc[0], bc[1], got, want)
		}
	}
}

// accuracyItems builds n items where the baseline is right on the first
// baseRight and the candidate on the first candRight of those plus extra
// of the rest.
func accuracyItems(n, baseRight, candRight, extra int) (base, cand Items) {
	for i := range n {
		id := strconv.Itoa(i)
		base.add(id, boolScore(i < baseRight))
		cand.add(id, boolScore(i < candRight || (i >= baseRight && i < baseRight+extra)))
	}
	return
}

func TestGatePairedAndUnpairedDisagree(t *testing.T) {
	// 200 questions; the baseline answers 100, the candidate 88 of the same
	// ones and nothing else: 12 discordant pairs, all against the
	// candidate. As independent samples (50% vs 44%) the 6-point drop is
	// 1.2 standard errors; paired, every one of the 12 changes is a loss.
	base, cand := accuracyItems(200, 100, 88, 0)
	bm := map[string]Metric{"gsm8k_strict": Proportion(100, 200)}
	cm := map[string]Metric{"gsm8k_strict": Proportion(88, 200)}
	gate := map[string]Allowance{"gsm8k": {Amount: 2, InSE: true}}

	unpaired, err := CompareMetrics(bm, cm, gate, false)
	if err != nil {
		t.Fatal(err)
	}
	paired, err := CompareWithItems(bm, cm, map[string]Items{"gsm8k_strict": base}, map[string]Items{"gsm8k_strict": cand}, gate, false)
	if err != nil {
		t.Fatal(err)
	}
	u, p := unpaired[0], paired[0]
	if u.Fail || !p.Fail {
		t.Fatalf("want unpaired pass and paired fail:\n%s\n%s", u, p)
	}
	// Independent figures: unpaired s.e. from the two binomial s.e.s;
	// paired s.e. the sample s.d. of the per-item differences / sqrt(n);
	// McNemar p = 2 * 0.5^12.
	wantU := 100 * math.Sqrt(0.5*0.5/200+0.44*0.56/200)
	mean := 100 * 12.0 / 200
	ss := 12*math.Pow(100-mean, 2) + 188*math.Pow(mean, 2)
	wantP := math.Sqrt(ss/199) / math.Sqrt(200)
	if math.Abs(u.SE-wantU) > 1e-9 || math.Abs(p.SE-wantP) > 1e-9 {
		t.Errorf("s.e.: unpaired %.6f want %.6f, paired %.6f want %.6f", u.SE, wantU, p.SE, wantP)
	}
	if want := 2 * math.Pow(0.5, 12); math.Abs(p.P-want) > 1e-15 {
		t.Errorf("McNemar p %.8g, want %.8g", p.P, want)
	}
	if math.Abs(p.Drop-6) > 1e-9 || p.DropLo <= 0 || p.DropHi < p.Drop || p.DropLo > p.Drop {
		t.Errorf("paired drop %.3f interval %.3f..%.3f: want 6 inside, above 0", p.Drop, p.DropLo, p.DropHi)
	}
	if u.DropLo >= 0 {
		t.Errorf("unpaired interval %.3f..%.3f should include 0", u.DropLo, u.DropHi)
	}
	// With --significant too: the paired interval lies wholly above 0.
	sig, err := CompareWithItems(bm, cm, map[string]Items{"gsm8k_strict": base}, map[string]Items{"gsm8k_strict": cand},
		map[string]Allowance{"gsm8k": {Amount: 0}}, true)
	if err != nil || !sig[0].Fail {
		t.Fatalf("significant paired gate should fail: %v %v", sig, err)
	}
}

func TestGateManyDiscordantPairsNotSignificant(t *testing.T) {
	// Same accuracies as above but the candidate trades 40 right answers
	// for 28 others: 40 vs 28 discordant pairs is no evidence (p ≈ 0.18),
	// though each item changed.
	base, cand := accuracyItems(200, 100, 60, 28)
	pd, err := ComparePaired(base, cand, true)
	if err != nil {
		t.Fatal(err)
	}
	if pd.B != 40 || pd.C != 28 {
		t.Fatalf("discordant %d/%d, want 40/28", pd.B, pd.C)
	}
	if want := exactMcNemar(40, 28); math.Abs(pd.P-want) > 1e-12 {
		t.Errorf("p %.10g, exact %.10g", pd.P, want)
	}
	if pd.Lo > 0 {
		t.Errorf("interval %.3f..%.3f should include 0", pd.Lo, pd.Hi)
	}
}

func TestGateLossBootstrapOverDocuments(t *testing.T) {
	// Documents of very different difficulty; the candidate is worse by
	// exactly 0.05 nats per token on every one. Unpaired, the spread
	// between documents hides it; paired, every resample shows 0.05.
	var base, cand Items
	for i := range 30 {
		id := strconv.Itoa(i)
		c := float64(100 + 10*i)
		l := 1 + 3*float64(i%7)/6 // per-token loss 1..4
		base.add(id, l*c)
		base.Count = append(base.Count, c)
		cand.add(id, (l+0.05)*c)
		cand.Count = append(cand.Count, c)
	}
	ratio := func(it Items) float64 {
		var s, c float64
		for i := range it.Score {
			s += it.Score[i]
			c += it.Count[i]
		}
		return s / c
	}
	bm := map[string]Metric{"loss": {Value: ratio(base), StdErr: BootstrapSE(base)}}
	cm := map[string]Metric{"loss": {Value: ratio(cand), StdErr: BootstrapSE(cand)}}
	gate := map[string]Allowance{"loss": {Amount: 2, InSE: true}}
	unpaired, err := CompareMetrics(bm, cm, gate, false)
	if err != nil {
		t.Fatal(err)
	}
	paired, err := CompareWithItems(bm, cm, map[string]Items{"loss": base}, map[string]Items{"loss": cand}, gate, false)
	if err != nil {
		t.Fatal(err)
	}
	u, p := unpaired[0], paired[0]
	if u.Fail || !p.Fail {
		t.Fatalf("want unpaired pass and paired fail:\n%s\n%s", u, p)
	}
	if math.Abs(p.Drop-0.05) > 1e-12 || math.Abs(p.DropLo-0.05) > 1e-9 || math.Abs(p.DropHi-0.05) > 1e-9 || p.SE > 1e-9 || p.P != 0 {
		t.Errorf("paired drop %.6f interval %.6f..%.6f se %.3g p %g: want exactly 0.05, se 0, p 0", p.Drop, p.DropLo, p.DropHi, p.SE, p.P)
	}
	if u.SE < 0.05 {
		t.Errorf("unpaired s.e. %.4f: the document spread should dominate", u.SE)
	}
}

func TestComparePairedRejectsDifferentItems(t *testing.T) {
	a, b := accuracyItems(10, 5, 5, 0)
	b.IDs[3] = "x"
	if _, err := ComparePaired(a, b, true); err == nil {
		t.Fatal("different items compared")
	}
}
