using ERCache.Replay.Output;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Replay.Tests;

/// <summary>Progress lines of long commands: what they say, when, and where they go.</summary>
public sealed class ProgressTests
{
    [Fact]
    public void A_sweep_reports_every_run_with_an_estimate_extrapolated_from_its_pace()
    {
        var time = new FakeTimeProvider();
        var output = new StringWriter();
        var progress = new ProgressLine("capacity sweep", output, time);

        time.Advance(TimeSpan.FromSeconds(30));
        progress.RunDone(1, 4, "Lru at 100");
        time.Advance(TimeSpan.FromSeconds(30));
        progress.RunDone(2, 4, "Fifo at 100");
        time.Advance(TimeSpan.FromSeconds(60));
        progress.RunDone(4, 4, "Sieve at 100");

        Assert.Equal(
            [
                "capacity sweep: 1 of 4 runs done (last: Lru at 100), 30 s elapsed, about 1 min 30 s left",
                "capacity sweep: 2 of 4 runs done (last: Fifo at 100), 1 min 00 s elapsed, about 1 min 00 s left",
                "capacity sweep: 4 of 4 runs done (last: Sieve at 100), 2 min 00 s elapsed",
            ],
            Lines(output));
    }

    [Fact]
    public void A_replay_says_nothing_for_its_first_ten_seconds_then_at_most_once_every_ten()
    {
        var time = new FakeTimeProvider();
        var output = new StringWriter();
        var progress = new ProgressLine("replay", output, time);

        progress.Report(0);
        time.Advance(TimeSpan.FromSeconds(9));
        progress.Report(0.1);
        Assert.Empty(Lines(output));

        time.Advance(TimeSpan.FromSeconds(11)); // 20 s for a quarter: 60 s left
        progress.Report(0.25);
        time.Advance(TimeSpan.FromSeconds(5));
        progress.Report(0.3);
        time.Advance(TimeSpan.FromSeconds(55)); // 80 s for 80 %: 20 s left
        progress.Report(0.8);

        Assert.Equal(
            [
                "replay: 25 % of the trace, 20 s elapsed, about 1 min 00 s left",
                "replay: 80 % of the trace, 1 min 20 s elapsed, about 20 s left",
            ],
            Lines(output));
    }

    [Theory]
    [InlineData(0.4, "0 s")]
    [InlineData(42.4, "42 s")]
    [InlineData(185, "3 min 05 s")]
    [InlineData(3720, "1 h 02 min")]
    public void Durations_read_as_people_say_them(double seconds, string expected) =>
        Assert.Equal(expected, ProgressLine.Duration(TimeSpan.FromSeconds(seconds)));

    [Fact]
    public void A_sweep_through_the_command_reports_each_replay_on_standard_error_and_keeps_standard_output_for_the_table()
    {
        using var harness = new ReplayHarness();
        string trace = harness.WriteTrace("""
            ts,user
            0,1
            1000,2
            2000,1
            """);

        var (code, stdout, stderr) = ReplayHarness.Run("--trace", trace, "--dimensions", "8", "--sweep-ttl", "1s,5s,1m", "--svg", harness.Path("sweep.svg"));

        Assert.True(code == 0, stderr);
        var lines = Lines(new StringWriter(new System.Text.StringBuilder(stderr)));
        Assert.Equal(3, lines.Length);
        Assert.StartsWith("TTL sweep: 1 of 3 runs done (last: TTL 1s), ", lines[0], StringComparison.Ordinal);
        Assert.Contains(", about ", lines[1], StringComparison.Ordinal);
        Assert.StartsWith("TTL sweep: 3 of 3 runs done (last: TTL 1m), ", lines[2], StringComparison.Ordinal);
        Assert.DoesNotContain("runs done", stdout, StringComparison.Ordinal);
    }

    private static string[] Lines(StringWriter output) =>
        output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
