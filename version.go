package main

import (
	"runtime/debug"
	"time"

	"github.com/prometheus/common/version"
)

// Version information without the Makefile: `go build` stamps no
// -ldflags into prometheus/common/version, but (in a git checkout, unless
// -buildvcs=false) Go embeds the module version, the commit, its time and
// whether the tree was modified. Fill from those what the ldflags did not
// set, so --version, the landing page and smtp_exporter_build_info never
// show an empty version.
func init() {
	bi, ok := debug.ReadBuildInfo()
	s := stampFromBuildInfo(bi, ok)
	if version.Version == "" {
		version.Version = s.version
	}
	if version.Revision == "" {
		version.Revision = s.revision
	}
	if version.BuildDate == "" {
		version.BuildDate = s.buildDate
	}
}

// buildStamp is the version information Go's build information gives.
type buildStamp struct {
	version   string // the main module's version, "devel" when Go has none
	revision  string // the VCS revision, "-modified" appended for a modified tree; "" if unknown
	buildDate string // the commit's time (as the Makefile writes dates); "" if unknown
}

// stampFromBuildInfo reads bi (ok as debug.ReadBuildInfo returned it).
func stampFromBuildInfo(bi *debug.BuildInfo, ok bool) buildStamp {
	s := buildStamp{version: "devel"}
	if !ok || bi == nil {
		return s
	}
	// Go 1.24+ sets the main module's version from the VCS tag or commit
	// (a pseudo-version, "+dirty" for a modified tree); "(devel)" without.
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		s.version = v
	}
	var modified bool
	for _, kv := range bi.Settings {
		switch kv.Key {
		case "vcs.revision":
			s.revision = kv.Value
		case "vcs.modified":
			modified = kv.Value == "true"
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, kv.Value); err == nil {
				s.buildDate = t.UTC().Format("20060102-15:04:05")
			}
		}
	}
	if s.revision != "" && modified {
		s.revision += "-modified"
	}
	return s
}
