package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestTopLevelUsageAndExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	if code := runMain([]string{"--help"}, &out, &errb); code != 0 {
		t.Fatalf("--help exit %d", code)
	}
	for name := range commands {
		if !strings.Contains(errb.String(), name) {
			t.Errorf("--help does not list %s", name)
		}
	}
	errb.Reset()
	if code := runMain([]string{"no-such-command"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown command: exit %d, %q", code, errb.String())
	}
	if code := runMain(nil, &out, &errb); code != 2 {
		t.Fatalf("no args: exit %d", code)
	}
}

func TestExitCodeMapping(t *testing.T) {
	var errb bytes.Buffer
	if c := exitCode(nil, "x", &errb); c != 0 {
		t.Errorf("nil -> %d", c)
	}
	if c := exitCode(errHelp, "x", &errb); c != 0 {
		t.Errorf("help -> %d", c)
	}
	if c := exitCode(usagef("bad flag"), "x", &errb); c != 2 {
		t.Errorf("usage -> %d", c)
	}
	errb.Reset()
	if c := exitCode(errors.New("read a.json.gz: line 3:\nbad"), "x", &errb); c != 1 || strings.Count(errb.String(), "\n") != 1 {
		t.Errorf("failure -> %d, %q (want one line)", c, errb.String())
	}
}

func TestEveryCommandHasHelpAndRejectsUnknownFlags(t *testing.T) {
	for name := range commands {
		var out, errb bytes.Buffer
		if code := runMain([]string{name, "--help"}, &out, &errb); code != 0 {
			t.Errorf("%s --help: exit %d: %s", name, code, errb.String())
		}
		errb.Reset()
		if code := runMain([]string{name, "--no-such-flag-xyz"}, &out, &errb); code != 2 {
			t.Errorf("%s --no-such-flag-xyz: exit %d, want 2: %s", name, code, errb.String())
		}
	}
}
