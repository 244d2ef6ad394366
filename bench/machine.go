package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// machine names the machine a table was measured on: tables from two
// machines differ by more than any change measured on one. Seen here: the
// same binary did 4,401 emails/s on one 2-CPU VM and 2,400 on another whose
// argon2id ceiling was within 10 % of the first's (BENCHMARKS.md).
func machine() string {
	cpu := runtime.GOARCH
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		fields := map[string]string{}
		for line := range strings.Lines(string(b)) {
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				continue
			}
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if _, seen := fields[k]; !seen {
				fields[k] = v
			}
		}
		if name := fields["model name"]; name != "" {
			cpu = name
			if fam, model := fields["cpu family"], fields["model"]; fam != "" && model != "" {
				cpu += fmt.Sprintf(" (family %s, model %s)", fam, model)
			}
			if mhz, err := strconv.ParseFloat(fields["cpu MHz"], 64); err == nil {
				cpu += fmt.Sprintf(", %.0f MHz", mhz)
			}
		}
	}
	s := fmt.Sprintf("%s, %d CPUs, %s/%s", cpu, runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	if rel, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		s += " " + strings.TrimSpace(string(rel))
	}
	return s + ", " + runtime.Version()
}
