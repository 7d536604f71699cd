using ERCache.Replay.Output;
using ERCache.Replay.Replay;
using ERCache.Replay.Traces;

namespace ERCache.Replay.Tests;

public sealed class InputTests : IDisposable
{
    private readonly ReplayHarness _harness = new();

    public void Dispose() => _harness.Dispose();

    [Theory]
    [InlineData("user,ts\n0,1\n", 1, "the header must be")]
    [InlineData("ts,user\n0,1\n5\n", 3, "expected 2 fields (ts,user), got 1")]
    [InlineData("ts,user\n0,1\nabc,1\n", 3, "ts 'abc' is not a non-negative integer")]
    [InlineData("ts,user\n0,1\n-5,1\n", 3, "ts '-5' is not a non-negative integer")]
    [InlineData("ts,user\n10,1\n9,1\n", 3, "ts 9 is earlier than the previous row's 10")]
    [InlineData("ts,user\n0,1\n1,9223372036854775808\n", 3, "user '9223372036854775808' is not a signed 64-bit integer")]
    [InlineData("ts,user,fail\n0,1,0\n1,1,2\n", 3, "fail '2' must be 0 or 1")]
    [InlineData("ts,user,model\n0,1,\n", 2, "model is empty")]
    [InlineData("ts,user\n0,1\n\n2,1\n", 3, "empty line")]
    [InlineData("", 1, "the file is empty")]
    public void A_malformed_row_stops_the_run_with_its_line_number_and_reason(string csv, int line, string reason)
    {
        string path = _harness.WriteTrace(csv, "bad.csv");
        var (code, _, stderr) = ReplayHarness.Run("--trace", path);

        Assert.Equal(ReplayCommand.BadInput, code);
        Assert.Contains($"bad.csv:{line}: {reason}", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_trace_naming_an_unconfigured_model_is_refused_by_name()
    {
        string config = _harness.Path("ctr.json");
        File.WriteAllText(config, """{ "ERCache": { "Models": { "ctr": { "Dimensions": 4, "Direct": { "Ttl": "00:01:00" }, "Failover": { "Ttl": "01:00:00" } } } } }""");
        var (code, _, stderr) = ReplayHarness.Run("--trace", _harness.WriteTrace("ts,user,model\n0,1,ranker\n"), "--config", config);

        Assert.Equal(ReplayCommand.BadInput, code);
        Assert.Contains("The trace names model 'ranker', which is not configured (configured: ctr).", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "--synthetic", "--trace", "x.csv" }, "Give exactly one input")]
    [InlineData(new[] { "--scarab", "x.bin" }, "--scarab needs --rate N")]
    [InlineData(new[] { "--synthetic", "--direct-ttl", "soon" }, "--direct-ttl: 'soon' is not a positive duration")]
    [InlineData(new[] { "--synthetic", "--routing", "roundrobin" }, "--routing must be random or sticky (got 'roundrobin')")]
    [InlineData(new[] { "--synthetic", "--failure-rate", "1.5" }, "--failure-rate must be between 0 and 1")]
    [InlineData(new[] { "--synthetic", "--bogus" }, "Unknown option '--bogus'")]
    [InlineData(new[] { "--synthetic", "--config", "a.json", "--capacity", "5" }, "Give either --config or the tier options")]
    public void A_bad_command_line_names_the_option(string[] args, string message)
    {
        var (code, _, stderr) = ReplayHarness.Run(args);

        Assert.Equal(ReplayCommand.BadUsage, code);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Invalid_tier_settings_are_reported_with_the_librarys_validation_message()
    {
        var (code, _, stderr) = ReplayHarness.Run("--trace", _harness.WriteTrace("ts,user\n0,1\n"), "--eviction", "Random");

        Assert.Equal(ReplayCommand.BadInput, code);
        Assert.Contains("ERCache:Models:model:Direct:Eviction 'Random' is not a known eviction strategy", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void A_scarab_key_trace_is_read_as_big_endian_keys_at_the_given_rate_gzipped_or_not()
    {
        long[] keys = [1, -2, 1L << 40, 1];
        var raw = keys.SelectMany(k => BitConverter.GetBytes(k).Reverse()).ToArray();
        string plain = _harness.Path("keys.bin"), gz = _harness.Path("keys.bin.gz");
        File.WriteAllBytes(plain, raw);
        using (var file = File.Create(gz))
        using (var zip = new System.IO.Compression.GZipStream(file, System.IO.Compression.CompressionLevel.Fastest))
        {
            zip.Write(raw);
        }

        foreach (var path in new[] { plain, gz })
        {
            var trace = ScarabTrace.Read(path, ratePerSecond: 2);
            Assert.Equal(keys, trace.Requests.Select(r => r.User));
            Assert.Equal([0L, 500, 1000, 1500], trace.Requests.Select(r => r.TimestampMs));
        }

        File.WriteAllBytes(plain, raw[..12]);
        var error = Assert.Throws<TraceFormatException>(() => ScarabTrace.Read(plain, 2));
        Assert.Equal("the file ends inside key 2 (4 of 8 bytes)", error.Reason);
    }

    [Fact]
    public void A_written_synthetic_trace_reads_back_identically()
    {
        string path = _harness.Path("synthetic.csv");
        var (code, _, stderr) = ReplayHarness.Run("--synthetic", "--users", "200", "--models", "a,b", "--failure-rate", "0.1", "--write-trace", path, "--dimensions", "4");
        Assert.True(code == 0, stderr);

        var generated = SyntheticTrace.Generate(new SyntheticSettings { Users = 200, Models = ["a", "b"], FailureRate = 0.1 });
        var read = CsvTrace.Read(path);
        Assert.Equal(generated.Models, read.Models);
        Assert.Equal(generated.Requests, read.Requests);
        Assert.InRange(read.Requests.Count(r => r.Fail) / (double)read.Requests.Length, 0.07, 0.13);
    }
}

public sealed class SyntheticTraceTests
{
    [Fact]
    public void Same_user_gaps_match_the_papers_two_points_within_two_percentage_points()
    {
        var trace = SyntheticTrace.Generate(new SyntheticSettings { Users = 20_000, Seed = 7 });

        Assert.InRange(SyntheticTrace.ShareOfGapsWithin(trace, TimeSpan.FromMinutes(1)), 0.50, 0.54);
        Assert.InRange(SyntheticTrace.ShareOfGapsWithin(trace, TimeSpan.FromMinutes(10)), 0.74, 0.78);
        Assert.True(trace.Requests.Length > 100_000);
        Assert.True(trace.Requests.Zip(trace.Requests.Skip(1)).All(p => p.First.TimestampMs <= p.Second.TimestampMs));
    }

    [Fact]
    public void A_stationary_trace_has_a_flat_rate_and_the_same_gaps_where_the_default_one_grows()
    {
        static (long First, long Last) Hours(Trace t) =>
            (t.Requests.Count(r => r.TimestampMs < 3_600_000), t.Requests.Count(r => r.TimestampMs >= 5 * 3_600_000));
        var growing = Hours(SyntheticTrace.Generate(new SyntheticSettings { Users = 20_000, Seed = 7 }));
        var stationaryTrace = SyntheticTrace.Generate(new SyntheticSettings { Users = 20_000, Seed = 7, Stationary = true });
        var stationary = Hours(stationaryTrace);

        Assert.True(growing.Last > 3 * growing.First, $"the default trace grows: {growing.First} then {growing.Last}");
        Assert.InRange(stationary.Last / (double)stationary.First, 0.9, 1.1);
        Assert.InRange(SyntheticTrace.ShareOfGapsWithin(stationaryTrace, TimeSpan.FromMinutes(1)), 0.50, 0.54);
        Assert.InRange(SyntheticTrace.ShareOfGapsWithin(stationaryTrace, TimeSpan.FromMinutes(10)), 0.74, 0.78);
    }

    [Fact]
    public void Outage_windows_fail_every_row_inside_them_and_none_outside()
    {
        var trace = SyntheticTrace.Generate(new SyntheticSettings
        {
            Users = 2_000,
            Outages = [(TimeSpan.FromHours(2), TimeSpan.FromMinutes(10))],
        });
        long start = 2 * 3_600_000, end = start + 600_000;

        Assert.All(trace.Requests, r => Assert.Equal(r.TimestampMs >= start && r.TimestampMs < end, r.Fail));
        Assert.Contains(trace.Requests, r => r.Fail);
    }

    [Fact]
    public void The_same_seed_gives_the_same_trace_and_another_seed_does_not()
    {
        var a = SyntheticTrace.Generate(new SyntheticSettings { Users = 300, Seed = 3 });
        var b = SyntheticTrace.Generate(new SyntheticSettings { Users = 300, Seed = 3 });
        var c = SyntheticTrace.Generate(new SyntheticSettings { Users = 300, Seed = 4 });

        Assert.Equal(a.Requests, b.Requests);
        Assert.NotEqual(a.Requests, c.Requests);
    }
}

public sealed class OutputTests
{
    [Fact]
    public void Ages_are_exact_below_65_seconds_and_within_a_fifth_of_a_percent_above()
    {
        var h = new AgeHistogram();
        foreach (long v in new long[] { 5, 5, 7, 65_535 })
        {
            h.Record(v);
        }

        Assert.Equal(5, h.Percentile(50));
        Assert.Equal(7, h.Percentile(75));
        Assert.Equal(65_535, h.Percentile(100));

        var rng = new Random(1);
        for (int i = 0; i < 1000; i++)
        {
            long v = rng.NextInt64(65_536, 1L << 40);
            var one = new AgeHistogram();
            one.Record(v);
            Assert.InRange(one.Percentile(50)!.Value, v * 0.998, v);
        }

        Assert.Null(new AgeHistogram().Percentile(50));
    }

    [Fact]
    public void The_sweep_chart_is_an_svg_naming_its_title_axes_and_every_series()
    {
        string svg = SweepChart.RenderSvg(
            "A <title> & more",
            "x axis",
            "left axis",
            "right axis",
            [new Series("a", [(1, 10), (10, 20), (100, 15)]), new Series("b & c", [(1, 5), (100, 50)], RightAxis: true)],
            logX: true,
            x => x.ToString(System.Globalization.CultureInfo.InvariantCulture));

        var doc = System.Xml.Linq.XDocument.Parse(svg);
        var ns = System.Xml.Linq.XNamespace.Get("http://www.w3.org/2000/svg");
        Assert.Equal("svg", doc.Root!.Name.LocalName);
        var texts = doc.Descendants(ns + "text").Select(t => t.Value.Trim()).ToHashSet();
        foreach (var expected in new[] { "A <title> & more", "x axis", "left axis", "right axis", "a", "b & c", "1", "10", "100" })
        {
            Assert.Contains(expected, texts);
        }

        Assert.Throws<ArgumentException>(() => SweepChart.RenderSvg("t", "x", "y", null, [new Series("empty", [])], logX: false, x => "x"));
    }
}
