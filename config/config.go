// Package config loads YAML configuration files strictly and binds config
// structs to command-line flags, so a config struct is the single source of
// truth for a setting's name, default and documentation.
//
// Struct fields use two tags: `yaml:"name"` (the key in files and the flag
// name) and `help:"..."` (the documentation shown by --help). Nested structs
// become dotted flags: field `Train.Steps` with yaml names train/steps is
// flag -train.steps.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Load decodes the YAML file at path into dst, which should already hold the
// defaults. Unknown keys and wrong types are errors naming the file, line and
// key.
func Load(path string, dst any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	if err := Decode(data, dst); err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	return nil
}

// Decode is Load on bytes.
func Decode(data []byte, dst any) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return err
	}
	if err := checkIntegers(&root, reflect.TypeOf(dst), ""); err != nil {
		return err
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: keep defaults
		}
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return errors.New(strings.Join(te.Errors, "; "))
		}
		return err
	}
	return nil
}

// checkIntegers rejects a non-integer number (`steps: 1.5`) given for an
// integer field: yaml.v3 would truncate it silently.
func checkIntegers(n *yaml.Node, t reflect.Type, key string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || n == nil {
		return nil
	}
	switch n.Kind {
	case yaml.DocumentNode, yaml.AliasNode:
		for _, c := range n.Content {
			if err := checkIntegers(c, t, key); err != nil {
				return err
			}
		}
		if n.Kind == yaml.AliasNode {
			return checkIntegers(n.Alias, t, key)
		}
		return nil
	case yaml.ScalarNode:
		switch t.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			if t == reflect.TypeOf(time.Duration(0)) {
				return nil
			}
			if n.ShortTag() == "!!float" {
				return fmt.Errorf("line %d: %s: %s is not an integer", n.Line, key, n.Value)
			}
		}
		return nil
	case yaml.SequenceNode:
		if t.Kind() != reflect.Slice && t.Kind() != reflect.Array {
			return nil
		}
		for _, c := range n.Content {
			if err := checkIntegers(c, t.Elem(), key); err != nil {
				return err
			}
		}
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			name := k.Value
			if key != "" {
				name = key + "." + k.Value
			}
			switch t.Kind() {
			case reflect.Map:
				if err := checkIntegers(v, t.Elem(), name); err != nil {
					return err
				}
			case reflect.Struct:
				if ft, ok := fieldType(t, k.Value); ok {
					if err := checkIntegers(v, ft, name); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// fieldType finds the struct field a YAML key decodes into (inline
// structs included).
func fieldType(t reflect.Type, key string) (reflect.Type, bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				if r, ok := fieldType(ft, key); ok {
					return r, true
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if name == key {
			return f.Type, true
		}
	}
	return nil, false
}

// Hash returns a stable hex SHA-256 of the config's canonical YAML encoding;
// manifests record it as lineage.
// It fails only for a value YAML cannot encode (a func or channel field).
func Hash(cfg any) (hash string, err error) {
	// yaml.v3 panics, rather than returning an error, on kinds it cannot encode.
	defer func() {
		if r := recover(); r != nil {
			hash, err = "", fmt.Errorf("config hash of %T: %v", cfg, r)
		}
	}()
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("config hash of %T: %w", cfg, err)
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

// Marshal renders cfg as YAML (for `--print-config` and reports).
func Marshal(cfg any) ([]byte, error) { return yaml.Marshal(cfg) }

// BindFlags registers one flag per leaf field of the struct pointed to by
// ptr, with the field's current value as the default and its help tag as the
// usage. prefix is prepended (with a dot) to every name; pass "" for none.
func BindFlags(fs *flag.FlagSet, prefix string, ptr any) error {
	v := reflect.ValueOf(ptr)
	if v.Kind() != reflect.Pointer || v.Elem().Kind() != reflect.Struct {
		return fmt.Errorf("config: binding flags to %T: want a pointer to a struct", ptr)
	}
	bindStruct(fs, prefix, v.Elem())
	return nil
}

func bindStruct(fs *flag.FlagSet, prefix string, v reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		if prefix != "" {
			name = prefix + "." + name
		}
		fv := v.Field(i)
		help := f.Tag.Get("help")
		if f.Tag.Get("flag") == "-" {
			continue
		}
		if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(time.Duration(0)) {
			bindStruct(fs, name, fv)
			continue
		}
		if fv.Kind() == reflect.Map || (fv.Kind() == reflect.Slice && fv.Type().Elem().Kind() == reflect.Struct) {
			continue // structured values come from the YAML file only
		}
		fs.Var(&fieldValue{fv}, name, help)
	}
}

// fieldValue adapts a struct field to flag.Value.
type fieldValue struct{ v reflect.Value }

func (f *fieldValue) String() string {
	if !f.v.IsValid() {
		return ""
	}
	switch f.v.Kind() {
	case reflect.Slice:
		parts := make([]string, f.v.Len())
		for i := range parts {
			parts[i] = fmt.Sprint(f.v.Index(i).Interface())
		}
		return strings.Join(parts, ",")
	}
	if d, ok := f.v.Interface().(time.Duration); ok {
		return d.String()
	}
	return fmt.Sprint(f.v.Interface())
}

func (f *fieldValue) IsBoolFlag() bool { return f.v.Kind() == reflect.Bool }

func (f *fieldValue) Set(s string) error {
	if _, ok := f.v.Interface().(time.Duration); ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			return err
		}
		f.v.SetInt(int64(d))
		return nil
	}
	return setScalar(f.v, s)
}

func setScalar(v reflect.Value, s string) error {
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return err
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(s, 0, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		x, err := strconv.ParseFloat(s, v.Type().Bits())
		if err != nil {
			return err
		}
		v.SetFloat(x)
	case reflect.Slice:
		parts := strings.Split(s, ",")
		out := reflect.MakeSlice(v.Type(), 0, len(parts))
		for _, p := range parts {
			p = strings.TrimSpace(p)
			if p == "" {
				continue
			}
			e := reflect.New(v.Type().Elem()).Elem()
			if err := setScalar(e, p); err != nil {
				return err
			}
			out = reflect.Append(out, e)
		}
		v.Set(out)
	default:
		return fmt.Errorf("unsupported flag type %s", v.Type())
	}
	return nil
}

// ConfigPath scans args for -config/--config (either "=value" or the next
// argument) without parsing anything else, so the file can be loaded before
// flags are bound and explicit flags then override it.
func ConfigPath(args []string) string {
	for i, a := range args {
		if a == "--" {
			break
		}
		for _, p := range []string{"-config", "--config"} {
			if a == p && i+1 < len(args) {
				return args[i+1]
			}
			if strings.HasPrefix(a, p+"=") {
				return a[len(p)+1:]
			}
		}
	}
	return ""
}
