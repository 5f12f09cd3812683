package main

import (
	"runtime/debug"
	"testing"
)

func TestStampFromBuildInfo(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i+1 < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	info := func(ver string, s []debug.BuildSetting) *debug.BuildInfo {
		bi := &debug.BuildInfo{Settings: s}
		bi.Main.Version = ver
		return bi
	}
	const rev = "4be9f0fd25e6818fd0d1a913ba5eae3a259a65ce"
	tests := []struct {
		name string
		bi   *debug.BuildInfo
		ok   bool
		want buildStamp
	}{
		{"no build information", nil, false, buildStamp{version: "devel"}},
		{"built without VCS stamping", info("(devel)", settings("-compiler", "gc")), true, buildStamp{version: "devel"}},
		{"clean checkout", info("v0.0.0-20261129090938-4be9f0fd25e6",
			settings("vcs", "git", "vcs.revision", rev, "vcs.time", "2026-11-29T09:09:38Z", "vcs.modified", "false")), true,
			buildStamp{version: "v0.0.0-20261129090938-4be9f0fd25e6", revision: rev, buildDate: "20261129-09:09:38"}},
		{"modified checkout", info("v0.0.0-20261129090938-4be9f0fd25e6+dirty",
			settings("vcs.revision", rev, "vcs.time", "2026-11-29T10:09:38+01:00", "vcs.modified", "true")), true,
			buildStamp{version: "v0.0.0-20261129090938-4be9f0fd25e6+dirty", revision: rev + "-modified", buildDate: "20261129-09:09:38"}},
		{"tagged release via go install", info("v1.2.3", nil), true, buildStamp{version: "v1.2.3"}},
		{"empty module version", info("", settings("vcs.time", "not a time")), true, buildStamp{version: "devel"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := stampFromBuildInfo(tc.bi, tc.ok); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
