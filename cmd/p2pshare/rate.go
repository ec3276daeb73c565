package main

import (
	"fmt"
	"strconv"
	"strings"
)

// rateUnits maps a RATE suffix to bytes per second per unit. Bit units are
// decimal, as network capacities are quoted.
var rateUnits = map[string]float64{
	"": 1, "b": 1, "B": 1,
	"KB": 1e3, "kB": 1e3, "MB": 1e6, "GB": 1e9,
	"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30,
	"Kbit": 1e3 / 8, "kbit": 1e3 / 8, "Mbit": 1e6 / 8, "mbit": 1e6 / 8, "Gbit": 1e9 / 8, "gbit": 1e9 / 8,
}

// parseRate parses a transfer rate such as 10MB, 80Mbit or 512KiB (per
// second; an optional "/s" is accepted) into bytes per second. "" and "0"
// mean no limit.
func parseRate(s string) (int64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/s")
	if s == "" || s == "0" {
		return 0, nil
	}
	i := strings.IndexFunc(s, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	num, unit := s, ""
	if i >= 0 {
		num, unit = s[:i], s[i:]
	}
	v, err := strconv.ParseFloat(num, 64)
	mult, ok := rateUnits[unit]
	if err != nil || !ok || v < 0 {
		return 0, fmt.Errorf("bad rate %q (examples: 10MB, 80Mbit, 512KiB)", s)
	}
	return int64(v * mult), nil
}
