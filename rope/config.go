package rope

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// ParseHFConfig reads the RoPE settings of an HF config.json: rope_theta,
// max_position_embeddings, head_dim (or hidden_size/num_attention_heads),
// partial_rotary_factor, rope_scaling (with "rope_type" or the legacy "type")
// and the transformers 5.x rope_parameters block. Where both dialects are
// present they must agree.
func ParseHFConfig(data []byte) (Params, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return Params{}, fmt.Errorf("rope: config is not a JSON object: %v", err)
	}
	var p Params
	num := func(m map[string]json.RawMessage, key, where string) (float64, bool, error) {
		raw, ok := m[key]
		if !ok || string(raw) == "null" {
			return 0, false, nil
		}
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil {
			return 0, false, fmt.Errorf("rope: config %s%q: want a number, got %s", where, key, raw)
		}
		return v, true, nil
	}
	integer := func(m map[string]json.RawMessage, key, where string) (int, bool, error) {
		v, ok, err := num(m, key, where)
		if err != nil || !ok {
			return 0, ok, err
		}
		if v != math.Trunc(v) || math.Abs(v) > 1<<40 {
			return 0, false, fmt.Errorf("rope: config %s%q: want an integer, got %v", where, key, v)
		}
		return int(v), true, nil
	}

	// head_dim, else hidden_size / num_attention_heads (HF's fallback).
	hd, ok, err := integer(top, "head_dim", "")
	if err != nil {
		return Params{}, err
	}
	if !ok {
		hidden, ok1, err1 := integer(top, "hidden_size", "")
		heads, ok2, err2 := integer(top, "num_attention_heads", "")
		if err := firstErr(err1, err2); err != nil {
			return Params{}, err
		}
		if !ok1 || !ok2 || heads <= 0 {
			return Params{}, fmt.Errorf("rope: config has no head_dim and no hidden_size/num_attention_heads to derive it")
		}
		hd = hidden / heads
	}
	p.HeadDim = hd
	if p.MaxPositions, _, err = integer(top, "max_position_embeddings", ""); err != nil {
		return Params{}, err
	}
	if p.PartialRotaryFactor, _, err = num(top, "partial_rotary_factor", ""); err != nil {
		return Params{}, err
	}
	theta, hasTheta, err := num(top, "rope_theta", "")
	if err != nil {
		return Params{}, err
	}
	topL0, _, err := integer(top, "original_max_position_embeddings", "")
	if err != nil {
		return Params{}, err
	}

	var scaling, params *Scaling
	if raw, ok := top["rope_scaling"]; ok && string(raw) != "null" {
		s, _, err := parseScaling(raw, "rope_scaling")
		if err != nil {
			return Params{}, err
		}
		scaling = &s
	}
	if raw, ok := top["rope_parameters"]; ok && string(raw) != "null" {
		s, extra, err := parseScaling(raw, "rope_parameters")
		if err != nil {
			return Params{}, err
		}
		params = &s
		if v, ok := extra["rope_theta"]; ok {
			if hasTheta && v != theta {
				return Params{}, fmt.Errorf("rope: config rope_theta %v disagrees with rope_parameters.rope_theta %v", theta, v)
			}
			theta, hasTheta = v, true
		}
		if v, ok := extra["partial_rotary_factor"]; ok {
			if p.PartialRotaryFactor != 0 && v != p.PartialRotaryFactor {
				return Params{}, fmt.Errorf("rope: config partial_rotary_factor %v disagrees with rope_parameters.partial_rotary_factor %v",
					p.PartialRotaryFactor, v)
			}
			p.PartialRotaryFactor = v
		}
	}
	if !hasTheta {
		return Params{}, fmt.Errorf("rope: config has no rope_theta (top level or in rope_parameters)")
	}
	p.Base = theta
	switch {
	case scaling != nil && params != nil:
		a, b := *scaling, *params
		a.Type, b.Type = normType(a.Type), normType(b.Type)
		if !reflect.DeepEqual(a, b) {
			return Params{}, fmt.Errorf("rope: config rope_scaling (%s) and rope_parameters (%s) disagree", a.Type, b.Type)
		}
		p.Scaling = *params
	case params != nil:
		p.Scaling = *params
	case scaling != nil:
		p.Scaling = *scaling
	}
	// Phi-3 keeps original_max_position_embeddings at the top level.
	if p.Scaling.OriginalMaxPositions == 0 && topL0 > 0 && normType(p.Scaling.Type) == TypeLongRope {
		p.Scaling.OriginalMaxPositions = topL0
	}
	if err := p.Validate(); err != nil {
		return Params{}, fmt.Errorf("%w (from config)", err)
	}
	return p, nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func normType(t string) string {
	return Params{Scaling: Scaling{Type: t}}.ScalingType()
}

// parseScaling reads a rope_scaling or rope_parameters object. It returns
// the rope_theta and partial_rotary_factor found there separately (only
// rope_parameters carries them). Unknown keys are an error: they usually
// mean a method this package does not implement (e.g. mrope_section).
func parseScaling(raw json.RawMessage, where string) (Scaling, map[string]float64, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return Scaling{}, nil, fmt.Errorf("rope: config %s: want an object, got %s", where, raw)
	}
	var s Scaling
	extra := map[string]float64{}
	var bad []string
	f64 := func(key string, raw json.RawMessage) (float64, error) {
		var v float64
		if err := json.Unmarshal(raw, &v); err != nil {
			return 0, fmt.Errorf("rope: config %s.%s: want a number, got %s", where, key, raw)
		}
		return v, nil
	}
	list := func(key string, raw json.RawMessage) ([]float64, error) {
		var v []float64
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("rope: config %s.%s: want a list of numbers, got %.60s", where, key, raw)
		}
		return v, nil
	}
	var typ, legacy string
	for key, val := range m {
		if string(val) == "null" {
			continue
		}
		var err error
		var v float64
		switch key {
		case "rope_type", "type":
			var t string
			if err = json.Unmarshal(val, &t); err != nil {
				return Scaling{}, nil, fmt.Errorf("rope: config %s.%s: want a string, got %s", where, key, val)
			}
			if key == "type" {
				legacy = t
			} else {
				typ = t
			}
		case "factor":
			s.Factor, err = f64(key, val)
		case "original_max_position_embeddings":
			v, err = f64(key, val)
			if err == nil && (v != math.Trunc(v) || v < 0) {
				err = fmt.Errorf("rope: config %s.%s: want a positive integer, got %v", where, key, v)
			}
			s.OriginalMaxPositions = int(v)
		case "low_freq_factor":
			s.LowFreqFactor, err = f64(key, val)
		case "high_freq_factor":
			s.HighFreqFactor, err = f64(key, val)
		case "beta_fast":
			s.BetaFast, err = f64(key, val)
		case "beta_slow":
			s.BetaSlow, err = f64(key, val)
		case "attention_factor":
			s.AttentionFactor, err = f64(key, val)
		case "mscale":
			s.MScale, err = f64(key, val)
		case "mscale_all_dim":
			s.MScaleAllDim, err = f64(key, val)
		case "truncate":
			var t bool
			if err = json.Unmarshal(val, &t); err != nil {
				err = fmt.Errorf("rope: config %s.truncate: want true or false, got %s", where, val)
			}
			s.NoTruncate = !t
		case "short_factor":
			s.ShortFactor, err = list(key, val)
		case "long_factor":
			s.LongFactor, err = list(key, val)
		case "rope_theta", "partial_rotary_factor":
			if where != "rope_parameters" {
				bad = append(bad, key)
				continue
			}
			extra[key], err = f64(key, val)
		default:
			bad = append(bad, key)
		}
		if err != nil {
			return Scaling{}, nil, err
		}
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return Scaling{}, nil, fmt.Errorf("rope: config %s: unsupported keys %s", where, strings.Join(bad, ", "))
	}
	switch {
	case typ != "" && legacy != "" && normType(typ) != normType(legacy):
		return Scaling{}, nil, fmt.Errorf("rope: config %s: rope_type %q and type %q disagree", where, typ, legacy)
	case typ == "":
		typ = legacy
	}
	if typ == "" {
		return Scaling{}, nil, fmt.Errorf("rope: config %s: no rope_type (or type)", where)
	}
	s.Type = normType(typ)
	return s, extra, nil
}

// HFFields returns the config.json fields that carry these settings, in the
// transformers 4.x layout: rope_theta, max_position_embeddings (when set),
// partial_rotary_factor (when not 1) and rope_scaling (null for default).
func (p Params) HFFields() map[string]any {
	f := map[string]any{"rope_theta": p.Base}
	if p.MaxPositions > 0 {
		f["max_position_embeddings"] = p.MaxPositions
	}
	if p.PartialRotaryFactor != 0 && p.PartialRotaryFactor != 1 {
		f["partial_rotary_factor"] = p.PartialRotaryFactor
	}
	if p.ScalingType() == TypeDefault {
		f["rope_scaling"] = nil
	} else {
		f["rope_scaling"] = p.Scaling.hfMap()
	}
	return f
}

// HFRopeParameters returns the transformers 5.x rope_parameters object.
func (p Params) HFRopeParameters() map[string]any {
	m := p.Scaling.hfMap()
	m["rope_theta"] = p.Base
	if p.PartialRotaryFactor != 0 && p.PartialRotaryFactor != 1 {
		m["partial_rotary_factor"] = p.PartialRotaryFactor
	}
	return m
}

func (s Scaling) hfMap() map[string]any {
	m := map[string]any{"rope_type": normType(s.Type)}
	set := func(key string, v float64) {
		if v != 0 {
			m[key] = v
		}
	}
	set("factor", s.Factor)
	if s.OriginalMaxPositions > 0 {
		m["original_max_position_embeddings"] = s.OriginalMaxPositions
	}
	set("low_freq_factor", s.LowFreqFactor)
	set("high_freq_factor", s.HighFreqFactor)
	set("beta_fast", s.BetaFast)
	set("beta_slow", s.BetaSlow)
	set("attention_factor", s.AttentionFactor)
	set("mscale", s.MScale)
	set("mscale_all_dim", s.MScaleAllDim)
	if s.NoTruncate {
		m["truncate"] = false
	}
	if s.ShortFactor != nil {
		m["short_factor"] = slices.Clone(s.ShortFactor)
	}
	if s.LongFactor != nil {
		m["long_factor"] = slices.Clone(s.LongFactor)
	}
	return m
}

// ExtendHFConfig rewrites an HF config.json for a plain base raise (ABF):
// rope_theta = base, max_position_embeddings = maxPositions, rope_scaling
// null (when the key exists) and rope_parameters.rope_theta = base (when that
// block exists). Every other byte of the file is kept. A config that already
// uses a scaling method is refused rather than silently stripped of it.
func ExtendHFConfig(data []byte, base float64, maxPositions int) ([]byte, error) {
	old, err := ParseHFConfig(data)
	if err != nil {
		return nil, err
	}
	if t := old.ScalingType(); t != TypeDefault {
		return nil, fmt.Errorf("rope: config uses %s scaling; extend writes a plain base raise and would drop it", t)
	}
	next := old
	next.Base, next.MaxPositions = base, maxPositions
	if err := next.Validate(); err != nil {
		return nil, err
	}
	if maxPositions <= 0 {
		return nil, fmt.Errorf("rope: max_position_embeddings %d must be positive", maxPositions)
	}
	start := skipSpace(data, 0)
	obj, err := scanObject(data, start)
	if err != nil {
		return nil, err
	}
	theta := []byte(pyFloat(base))
	out := data
	edit := func(o object, key string, val []byte, insert bool) error {
		var err error
		out, err = o.set(out, key, val, insert)
		return err
	}
	// Each edit shifts the bytes after it, so rescan after every edit
	// instead of reasoning about offsets.
	rescan := func() (object, error) { return scanObject(out, start) }
	if m := obj.member("rope_parameters"); m != nil && string(out[m.valStart:m.valEnd]) != "null" {
		inner, err := scanObject(out, m.valStart)
		if err != nil {
			return nil, err
		}
		if err := edit(inner, "rope_theta", theta, true); err != nil {
			return nil, err
		}
		if obj, err = rescan(); err != nil {
			return nil, err
		}
	}
	if m := obj.member("rope_scaling"); m != nil {
		if err := edit(obj, "rope_scaling", []byte("null"), false); err != nil {
			return nil, err
		}
		if obj, err = rescan(); err != nil {
			return nil, err
		}
	}
	if err := edit(obj, "max_position_embeddings", []byte(strconv.Itoa(maxPositions)), true); err != nil {
		return nil, err
	}
	if obj, err = rescan(); err != nil {
		return nil, err
	}
	if obj.member("rope_theta") != nil || obj.member("rope_parameters") == nil {
		if err := edit(obj, "rope_theta", theta, true); err != nil {
			return nil, err
		}
	}
	// The result must read back as exactly what was asked for.
	got, err := ParseHFConfig(out)
	if err != nil {
		return nil, fmt.Errorf("rope: extended config does not parse back: %v", err)
	}
	if got.Base != base || got.MaxPositions != maxPositions || got.ScalingType() != TypeDefault {
		return nil, fmt.Errorf("rope: extended config reads back as base %v max %d scaling %s", got.Base, got.MaxPositions, got.ScalingType())
	}
	return out, nil
}

// pyFloat formats f the way Python's json.dumps writes a float, so an edited
// config reads like one written by transformers: 273000.0, 273768.4, 1e+16.
func pyFloat(f float64) string {
	a := math.Abs(f)
	if a != 0 && (a >= 1e16 || a < 1e-4) {
		s := strconv.FormatFloat(f, 'e', -1, 64)
		// Go writes e+16 and e-05; Python writes e+16 and e-05 too.
		return s
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// A minimal JSON object scanner that records byte spans, so edits touch
// only the values they change.

type member struct {
	key                        string
	keyStart, valStart, valEnd int
}

type object struct {
	start, end int // '{' and one past '}'
	members    []member
}

func (o object) member(key string) *member {
	for i := range o.members {
		if o.members[i].key == key {
			return &o.members[i]
		}
	}
	return nil
}

// set replaces key's value, or (when insert) adds the member: before the
// first key that sorts after it if the keys are sorted (HF writes sorted
// keys), else at the end, copying the surrounding whitespace.
func (o object) set(data []byte, key string, val []byte, insert bool) ([]byte, error) {
	if m := o.member(key); m != nil {
		return splice(data, m.valStart, m.valEnd, val), nil
	}
	if !insert {
		return data, nil
	}
	k, _ := json.Marshal(key)
	if len(o.members) == 0 {
		return splice(data, o.start+1, o.start+1, slices.Concat(k, []byte(": "), val)), nil
	}
	first := o.members[0]
	// separator between key and value as the file writes it, e.g. ": "
	kEnd := first.keyStart + len(mustMarshal(first.key))
	sep := data[kEnd:first.valStart]
	if !bytes.HasPrefix(bytes.TrimSpace(sep), []byte(":")) || len(bytes.TrimSpace(sep)) != 1 {
		sep = []byte(": ")
	}
	entry := slices.Concat(k, sep, val)
	sorted := sort.SliceIsSorted(o.members, func(i, j int) bool { return o.members[i].key < o.members[j].key })
	if sorted {
		for _, m := range o.members {
			if m.key > key {
				ws := leadingSpace(data, m.keyStart)
				return splice(data, m.keyStart, m.keyStart, slices.Concat(entry, []byte(","), ws)), nil
			}
		}
	}
	last := o.members[len(o.members)-1]
	ws := leadingSpace(data, last.keyStart)
	return splice(data, last.valEnd, last.valEnd, slices.Concat([]byte(","), ws, entry)), nil
}

func mustMarshal(s string) []byte {
	b, _ := json.Marshal(s)
	return b
}

// leadingSpace returns the whitespace just before position i.
func leadingSpace(data []byte, i int) []byte {
	j := i
	for j > 0 && isSpace(data[j-1]) {
		j--
	}
	return slices.Clone(data[j:i])
}

func splice(data []byte, from, to int, repl []byte) []byte {
	return slices.Concat(data[:from], repl, data[to:])
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

func scanObject(data []byte, i int) (object, error) {
	if i >= len(data) || data[i] != '{' {
		return object{}, fmt.Errorf("rope: config: expected an object at byte %d", i)
	}
	o := object{start: i}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		o.end = i + 1
		return o, nil
	}
	seen := map[string]bool{}
	for {
		i = skipSpace(data, i)
		if i >= len(data) || data[i] != '"' {
			return object{}, fmt.Errorf("rope: config: expected a key at byte %d", i)
		}
		kEnd, err := scanValue(data, i)
		if err != nil {
			return object{}, err
		}
		var key string
		if err := json.Unmarshal(data[i:kEnd], &key); err != nil {
			return object{}, fmt.Errorf("rope: config: bad key at byte %d: %v", i, err)
		}
		if seen[key] {
			return object{}, fmt.Errorf("rope: config: duplicate key %q at byte %d", key, i)
		}
		seen[key] = true
		j := skipSpace(data, kEnd)
		if j >= len(data) || data[j] != ':' {
			return object{}, fmt.Errorf("rope: config: expected ':' after key %q at byte %d", key, j)
		}
		vs := skipSpace(data, j+1)
		ve, err := scanValue(data, vs)
		if err != nil {
			return object{}, err
		}
		o.members = append(o.members, member{key: key, keyStart: i, valStart: vs, valEnd: ve})
		i = skipSpace(data, ve)
		if i >= len(data) {
			return object{}, fmt.Errorf("rope: config: unterminated object")
		}
		if data[i] == '}' {
			o.end = i + 1
			return o, nil
		}
		if data[i] != ',' {
			return object{}, fmt.Errorf("rope: config: expected ',' or '}' at byte %d", i)
		}
		i++
	}
}

// scanValue returns the end of the JSON value starting at i. The input was
// already validated by json.Unmarshal, so this only tracks nesting and strings.
func scanValue(data []byte, i int) (int, error) {
	if i >= len(data) {
		return 0, fmt.Errorf("rope: config: unexpected end of input")
	}
	switch data[i] {
	case '"':
		for j := i + 1; j < len(data); j++ {
			switch data[j] {
			case '\\':
				j++
			case '"':
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("rope: config: unterminated string at byte %d", i)
	case '{', '[':
		depth := 0
		for j := i; j < len(data); j++ {
			switch data[j] {
			case '"':
				e, err := scanValue(data, j)
				if err != nil {
					return 0, err
				}
				j = e - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, fmt.Errorf("rope: config: unterminated value at byte %d", i)
	default:
		j := i
		for j < len(data) && !isSpace(data[j]) && data[j] != ',' && data[j] != '}' && data[j] != ']' {
			j++
		}
		if j == i {
			return 0, fmt.Errorf("rope: config: expected a value at byte %d", i)
		}
		return j, nil
	}
}
