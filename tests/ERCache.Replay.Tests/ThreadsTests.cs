using System.Text.Json;

namespace ERCache.Replay.Tests;

/// <summary>
/// Replaying users on several threads (each with caches of its own) must give exactly the one-thread answer, and is
/// refused, with the reason, when users can affect one another; the JIT warm-up must not reach the results.
/// </summary>
public sealed class ThreadsTests : IDisposable
{
    private static readonly string[] Synthetic =
        ["--synthetic", "--users", "400", "--models", "a,b", "--failure-rate", "0.1", "--outage", "1h+20m", "--dimensions", "4"];

    private readonly ReplayHarness _harness = new();

    [Theory]
    [InlineData(1, "sticky")]
    [InlineData(3, "sticky")]
    [InlineData(3, "random")]
    public void Several_threads_give_the_one_thread_report(int hosts, string routing)
    {
        string[] options = [.. Synthetic, "--hosts", hosts.ToString(System.Globalization.CultureInfo.InvariantCulture), "--routing", routing];
        var (one, _) = _harness.ReplayWith([.. options, "--threads", "1"]);
        var (three, _) = _harness.ReplayWith([.. options, "--threads", "3"]);

        Assert.Equal(1, one.Long("threads"));
        Assert.Equal(3, three.Long("threads"));
        Assert.True(one.GetProperty("total").Long("failoverHits") > 0, "the trace should exercise failover");
        Assert.Equal(Strip(one), Strip(three));
        foreach (var (a, b) in PeakBytes(one).Zip(PeakBytes(three)))
        {
            // The shards' tiers hold the same rows; each extra tier adds its fixed part (at most 8 KB: an LRU tier's
            // hit buffer) and the index tables round differently.
            Assert.InRange(b - a, -64, 2 * hosts * 8192);
        }
    }

    [Fact]
    public void A_capacity_bound_replays_on_one_thread_and_says_why()
    {
        var (json, stdout) = _harness.ReplayWith([.. Synthetic, "--capacity", "10", "--threads", "4"]);

        Assert.Contains("1 thread: the Direct tier of 'a' holds 10 of 400 users", stdout);
        Assert.Equal(1, json.Long("threads"));
    }

    [Fact]
    public void The_warm_up_changes_no_result()
    {
        var (cold, _) = _harness.ReplayWith([.. Synthetic, "--warmup", "0"]);
        var (warm, stdout) = _harness.ReplayWith([.. Synthetic, "--warmup", "30ms"]);

        Assert.Contains("Warm-up (not timed)", stdout);
        Assert.Equal(Strip(cold), Strip(warm));
        Assert.Equal(PeakBytes(cold), PeakBytes(warm));
    }

    [Theory]
    [InlineData("--threads", "0", "--threads: '0' is not an integer of at least 1")]
    [InlineData("--warmup", "soon", "--warmup: 'soon' is not a positive duration")]
    public void Bad_thread_and_warm_up_options_are_usage_errors(string option, string value, string message)
    {
        var (code, _, stderr) = ReplayHarness.Run([.. Synthetic, option, value]);

        Assert.Equal(2, code);
        Assert.Contains(message, stderr);
    }

    public void Dispose() => _harness.Dispose();

    /// <summary>The report without what depends on the run rather than the trace: timing, threads, bytes.</summary>
    private static string Strip(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "{" + string.Join(",", e.EnumerateObject()
            .Where(p => p.Name is not ("elapsedSeconds" or "requestsPerSecond" or "threads" or "peakBytes"))
            .Select(p => $"{p.Name}:{Strip(p.Value)}")) + "}",
        _ => e.GetRawText(),
    };

    private static List<double> PeakBytes(JsonElement e)
    {
        var found = new List<double>();
        if (e.ValueKind == JsonValueKind.Object)
        {
            foreach (var p in e.EnumerateObject())
            {
                if (p.Name == "peakBytes")
                {
                    found.Add(p.Value.GetDouble());
                }
                else
                {
                    found.AddRange(PeakBytes(p.Value));
                }
            }
        }

        return found;
    }

    [Fact]
    public void A_replay_leaves_the_options_it_is_given_as_they_were()
    {
        var trace = ERCache.Replay.Traces.SyntheticTrace.Generate(new ERCache.Replay.Traces.SyntheticSettings { Users = 200, Seed = 3 });
        var options = new ERCacheOptions
        {
            Models =
            {
                ["model"] = new ModelOptions
                {
                    Dimensions = 4,
                    Direct = { Ttl = TimeSpan.FromMinutes(1), Capacity = 1000 },
                    Failover = { Ttl = TimeSpan.FromHours(1), Capacity = 1000 },
                },
            },
        };
        string before = JsonSerializer.Serialize(options);

        var result = ERCache.Replay.Replay.ReplayRunner.Run(trace, options, hosts: 2, threads: 2);

        Assert.Equal(2, result.Threads); // sharded: each shard's tiers were given their own capacities
        Assert.Equal(before, JsonSerializer.Serialize(options));
    }
}
