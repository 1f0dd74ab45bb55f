package pipelines

import (
	"fmt"
	"sort"
	"strings"

	"longctx/shards"
)

// Report renders the prepare run as Markdown: per source and per file,
// documents read = written + dropped by reason, tokens, and the length
// histogram.
func Report(m *shards.PrepareManifest, files []FileResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "# prepare report\n\n- tokenizer: `%s`\n- config: `%s`\n- dead letters: `%s`\n\n", m.TokenizerHash, m.ConfigHash, m.DeadLetters)
	reasons := map[string]bool{}
	for _, s := range m.Sources {
		for r := range s.Stats.Drops {
			reasons[r] = true
		}
	}
	rs := make([]string, 0, len(reasons))
	for r := range reasons {
		rs = append(rs, r)
	}
	sort.Strings(rs)

	b.WriteString("## Sources\n\n| source | format | files | read | written | dropped | check | tokens | tokens/doc | invalid UTF-8 seqs |")
	for _, r := range rs {
		fmt.Fprintf(&b, " %s |", r)
	}
	b.WriteString("\n|---|---|---:|---:|---:|---:|---|---:|---:|---:|" + strings.Repeat("---:|", len(rs)) + "\n")
	for _, s := range m.Sources {
		st := s.Stats
		per := 0.0
		if st.Written > 0 {
			per = float64(st.Tokens) / float64(st.Written)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %s | %d | %.0f | %d |", s.Name, s.Format, st.Files, st.Read, st.Written,
			st.Dropped(), check(st), st.Tokens, per, st.InvalidUTF8)
		for _, r := range rs {
			fmt.Fprintf(&b, " %d |", st.Drops[r])
		}
		b.WriteString("\n")
	}

	b.WriteString("\n## Steps (documents in, passed on, dropped; each step's own counts)\n\n| source | step | in | out | dropped | counts |\n|---|---|---:|---:|---|---|\n")
	for _, s := range m.Sources {
		for _, st := range s.Stats.Steps {
			var drops, counts []string
			for _, k := range sortedKeys(st.Drops) {
				drops = append(drops, fmt.Sprintf("%s %d", k, st.Drops[k]))
			}
			for _, k := range sortedKeys(st.Counts) {
				counts = append(counts, fmt.Sprintf("%s %d", k, st.Counts[k]))
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d %s | %s |\n", s.Name, st.Name, st.In, st.Out, st.Dropped(),
				strings.Join(drops, ", "), strings.Join(counts, ", "))
		}
	}

	b.WriteString("\n## Document lengths (tokens, EOS included): documents / tokens per bucket\n\n| source |")
	for i := range len(shards.LengthEdges) + 1 {
		fmt.Fprintf(&b, " %s |", shards.BucketLabel(i))
	}
	b.WriteString("\n|---|" + strings.Repeat("---:|", len(shards.LengthEdges)+1) + "\n")
	for _, s := range m.Sources {
		fmt.Fprintf(&b, "| %s |", s.Name)
		for i := range s.Stats.Lengths.Docs {
			fmt.Fprintf(&b, " %d / %d |", s.Stats.Lengths.Docs[i], s.Stats.Lengths.Tokens[i])
		}
		b.WriteString("\n")
	}

	b.WriteString("\n## Files\n\n| source | input | status | read | written | dropped (by reason) | check | tokens | cache |\n|---|---|---|---:|---:|---|---|---:|---|\n")
	for _, r := range files {
		status := "prepared"
		switch {
		case r.Unreadable != "":
			status = "UNREADABLE: " + strings.ReplaceAll(r.Unreadable, "|", "/")
		case r.Reused:
			status = "up to date"
		}
		var drops []string
		for _, k := range sortedKeys(r.Stats.Drops) {
			drops = append(drops, fmt.Sprintf("%s %d", k, r.Stats.Drops[k]))
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %d | %d | %d %s | %s | %d | `%s` |\n", r.Task.Source, r.Task.Input, status,
			r.Stats.Read, r.Stats.Written, r.Stats.Dropped(), strings.Join(drops, ", "), check(r.Stats), r.Stats.Tokens, r.Task.Cache)
	}
	return b.String()
}

func check(s shards.PrepareStats) string {
	if s.Check() == nil {
		return "read = written + dropped"
	}
	return "MISMATCH"
}

func sortedKeys(m map[string]int64) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
