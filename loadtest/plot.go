package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"os"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// plotCommand draws throughput and p99 latency against concurrency, one
// line per target, from the closed-loop summary rows of one or more JSON
// reports: go run ./loadtest plot results.json [more.json...] out.png
func plotCommand(args []string) error {
	if len(args) < 2 {
		return errors.New("usage: go run ./loadtest plot results.json [more.json...] out.png")
	}
	out := args[len(args)-1]
	var rows []summaryRow
	for _, in := range args[:len(args)-1] {
		b, err := os.ReadFile(in)
		if err != nil {
			return err
		}
		var rep report
		if err := json.Unmarshal(b, &rep); err != nil {
			return fmt.Errorf("%s: %w", in, err)
		}
		rows = append(rows, rep.Summary...)
	}
	series := seriesByTarget(rows)
	if len(series) == 0 {
		return errors.New("no closed-loop summary rows to plot (open-loop runs have no concurrency axis)")
	}
	tp, err := linePlot(series, "Throughput against concurrency", "requests per second", func(r summaryRow) float64 { return r.Throughput })
	if err != nil {
		return err
	}
	p99, err := linePlot(series, "p99 latency against concurrency", "p99 latency (ms)", func(r summaryRow) float64 { return r.P99 / 1000 })
	if err != nil {
		return err
	}
	img := vgimg.New(18*vg.Centimeter, 22*vg.Centimeter)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Millimeter * 4, PadBottom: vg.Millimeter * 4, PadLeft: vg.Millimeter * 4, PadRight: vg.Millimeter * 6, PadY: vg.Millimeter * 8}
	plots := [][]*plot.Plot{{tp}, {p99}}
	canvases := plot.Align(plots, tiles, dc)
	for i := range plots {
		plots[i][0].Draw(canvases[i][0])
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type series struct {
	name string
	rows []summaryRow // sorted by concurrency
}

// seriesByTarget keeps closed-loop rows, merges rows of the same target and
// concurrency from several files (the later file wins), and orders the
// targets as first seen.
func seriesByTarget(rows []summaryRow) []series {
	idx := map[string]int{}
	var out []series
	for _, r := range rows {
		if r.Rate > 0 || r.Concurrency < 1 {
			continue
		}
		i, ok := idx[r.Target]
		if !ok {
			i = len(out)
			idx[r.Target] = i
			out = append(out, series{name: r.Target})
		}
		s := &out[i]
		if j := slices.IndexFunc(s.rows, func(x summaryRow) bool { return x.Concurrency == r.Concurrency }); j >= 0 {
			s.rows[j] = r
		} else {
			s.rows = append(s.rows, r)
		}
	}
	for i := range out {
		slices.SortFunc(out[i].rows, func(a, b summaryRow) int { return a.Concurrency - b.Concurrency })
	}
	return out
}

var palette = []color.Color{
	color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff}, // keydelivery first: red
	color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
	color.RGBA{R: 0x94, G: 0x67, B: 0xbd, A: 0xff},
	color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	color.RGBA{R: 0x8c, G: 0x56, B: 0x4b, A: 0xff},
}

func linePlot(ss []series, title, ylabel string, y func(summaryRow) float64) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "concurrency (connections in flight, log scale)"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.Y.Min = 0
	p.Legend.Top = false // bottom right: under the lines of both plots
	p.Legend.Left = false
	p.Legend.XOffs = -vg.Millimeter * 2
	p.Legend.YOffs = vg.Millimeter * 2
	p.Add(plotter.NewGrid())
	var ticks []plot.Tick
	seen := map[int]bool{}
	minX, maxX := 0, 0
	for _, s := range ss {
		for _, r := range s.rows {
			if !seen[r.Concurrency] {
				seen[r.Concurrency] = true
				ticks = append(ticks, plot.Tick{Value: float64(r.Concurrency), Label: strconv.Itoa(r.Concurrency)})
			}
			if minX == 0 || r.Concurrency < minX {
				minX = r.Concurrency
			}
			maxX = max(maxX, r.Concurrency)
		}
	}
	p.X.Tick.Marker = plot.ConstantTicks(ticks)
	// Room on both sides, also when there is a single concurrency.
	p.X.Min, p.X.Max = float64(minX)/1.5, float64(maxX)*1.5
	for i, s := range ss {
		xys := make(plotter.XYs, len(s.rows))
		for j, r := range s.rows {
			xys[j] = plotter.XY{X: float64(r.Concurrency), Y: y(r)}
		}
		line, points, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		c := palette[i%len(palette)]
		line.Color = c
		line.Width = vg.Points(1.5)
		points.Color = c
		points.Shape = draw.CircleGlyph{}
		points.Radius = vg.Points(3)
		p.Add(line, points)
		p.Legend.Add(s.name, line, points)
	}
	return p, nil
}
