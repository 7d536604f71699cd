using System.Text.Json;

namespace ERCache.Replay.Tests;

/// <summary>Finite towers, worked out by hand: the library's own scheduler queues, times out and sheds on the
/// replay's clock.</summary>
public sealed class CapacityTests : IDisposable
{
    private readonly ReplayHarness _harness = new();

    public void Dispose() => _harness.Dispose();

    /// <summary>One model, one call at a time, direct TTL 1 min, failover 1 h; by default one user per call and a
    /// 250 ms deadline (with 100 ms per user: a tower of 10 users/s).</summary>
    private string Config(int timeoutMs = 250, int maxBatch = 1) => _harness.WriteTrace($$"""
        { "ERCache": { "Models": { "model": {
            "Dimensions": 4,
            "Inference": { "Timeout": "{{TimeSpan.FromMilliseconds(timeoutMs):c}}", "MaxBatchSize": {{maxBatch}}, "MaxConcurrency": 1 },
            "Direct": { "Ttl": "00:01:00" }, "Failover": { "Ttl": "01:00:00" } } } } }
        """, $"tower-{timeoutMs}-{maxBatch}.json");

    [Fact]
    public void A_burst_beyond_the_towers_rate_is_served_until_the_deadline_then_from_failover_or_as_fallbacks()
    {
        // 0-4 s: users 1-5 arrive one a second and are inferred (100 ms each). At 120 s their direct vectors have
        // expired; they arrive together with two new users 6 and 7: seven users at once for a 10-users/s tower.
        // Calls run one at a time: user 1 takes the free slot and ends at 120.1 s. The queue serves the users with no
        // failover vector first (DESIGN §2 rule 12): user 6 ends at 120.2 s; user 7 starts at 120.2 s and would end at
        // 120.3 s, past the 120.25 s deadline (a deadline miss, and with no failover vector, a fallback). Users 2-5
        // never start (shed) and are answered from the failover tier. First come, first served would have inferred
        // 2 and 3 instead, and both 6 and 7 would have fallen back.
        var (json, _) = _harness.ReplayWith(
            "--trace", _harness.WriteTrace("ts,user\n0,1\n1000,2\n2000,3\n3000,4\n4000,5\n120000,1\n120000,2\n120000,3\n120000,4\n120000,5\n120000,6\n120000,7\n"),
            "--config", Config(), "--user-cost", "100ms", "--call-cost", "0", "--window", "60s");
        var total = json.GetProperty("total");
        Assert.Equal(12, total.Long("requests"));
        Assert.Equal(0, total.Long("directHits"));
        Assert.Equal(8, total.Long("inferences")); // 5 before, then users 1, 6 and 7 (whose call started before the deadline)
        Assert.Equal(4, total.Long("failoverHits"));
        Assert.Equal(1, total.Long("fallbacks"));
        Assert.Equal(7, total.GetProperty("ageBySource").GetProperty("fresh").Long("count"));

        var burst = json.GetProperty("timeline").GetProperty("series").GetProperty("model")[2]; // the window from 120 s
        Assert.Equal(120, burst.GetProperty("startSeconds").GetDouble());
        Assert.Equal(7, burst.Long("requests"));
        Assert.Equal(2, burst.Long("fresh"));
        Assert.Equal(1, burst.Long("deadlineMisses"));
        Assert.Equal(4, burst.Long("shed"));
        Assert.Equal(4, burst.Long("failover"));
        Assert.Equal(1, burst.Long("fallback"));
        Assert.Equal(3, burst.Long("requestPathInferences"));
    }

    [Fact]
    public void Towers_come_from_a_config_files_replay_section_and_the_command_line_replaces_them()
    {
        string trace = _harness.WriteTrace("ts,user\n0,1\n1000,2\n2000,3\n3000,4\n4000,5\n120000,1\n120000,2\n120000,3\n120000,4\n120000,5\n120000,6\n120000,7\n");
        string WithTowers(string towers, string name) =>
            _harness.WriteTrace(File.ReadAllText(Config()).TrimEnd()[..^1] + $", \"Replay\": {{ \"Towers\": {towers} }} }}", name);

        // The file's towers give the hand-worked burst above; a faster tower on the command line serves everyone.
        string config = WithTowers("""{ "UserCost": "100ms", "CallCost": "0" }""", "replay-towers.json");
        Assert.Equal([12, 0, 8, 0, 4, 1], _harness.ReplayWith("--trace", trace, "--config", config).Json.GetProperty("total").Counts());
        Assert.Equal([12, 0, 12, 0, 0, 0], _harness.ReplayWith("--trace", trace, "--config", config, "--user-cost", "1ms").Json.GetProperty("total").Counts());

        string both = WithTowers("""{ "UserCost": "100ms", "Provision": "2" }""", "replay-both.json");
        var (code, _, stderr) = ReplayHarness.Run("--trace", trace, "--config", both);
        Assert.Equal(3, code);
        Assert.Contains("Replay:Towers: give the towers' capacity one way", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void The_late_result_of_a_call_that_missed_its_deadline_is_written_and_serves_the_next_request()
    {
        // Users 1 and 2 at once: 1 ends at 100 ms; 2 starts at 100 ms and ends at 200 ms, past a 150 ms deadline: a
        // fallback, but the late vector is written (WriteLateResults), so user 2 at 300 ms is a direct hit of age 100 ms.
        string config = Config(timeoutMs: 150);
        var total = _harness.ReplayWith(
            "--trace", _harness.WriteTrace("ts,user\n0,1\n0,2\n300,2\n"), "--config", config, "--user-cost", "100ms", "--call-cost", "0").Json.GetProperty("total");
        Assert.Equal([3, 1, 2, 0, 0, 1], total.Counts());
        Assert.Equal(100, total.GetProperty("ageBySource").GetProperty("direct").Long("ageP50Ms"));
    }

    [Fact]
    public void Batches_share_the_fixed_cost_of_a_call()
    {
        // Ten users at once, batches of up to 10, 50 ms per call + 5 ms per user: one call of 100 ms, inside the
        // 250 ms deadline. One user per call would need 10 x 55 ms and miss it for most of them.
        string config = Config(maxBatch: 10);
        string trace = _harness.WriteTrace("ts,user\n" + string.Concat(Enumerable.Range(1, 10).Select(u => $"0,{u}\n")));
        var total = _harness.ReplayWith("--trace", trace, "--config", config, "--user-cost", "5ms", "--call-cost", "50ms").Json.GetProperty("total");
        Assert.Equal([10, 0, 10, 0, 0, 0], total.Counts());
        Assert.Equal(0, total.GetProperty("ageBySource").GetProperty("fresh").Long("ageP99Ms")); // stamped at the call's end
    }

    [Fact]
    public void Provisioning_scales_the_towers_to_the_measured_steady_demand()
    {
        string[] trace = ["--synthetic", "--users", "4000", "--duration", "3h", "--seed", "6", "--direct-ttl", "5m", "--max-concurrency", "1", "--timeout", "100ms"];
        var unbounded = _harness.ReplayWith(trace).Json.GetProperty("total");
        var (ample, stdout) = _harness.ReplayWith([.. trace, "--provision", "200", "--call-cost", "0"]);
        var scarce = _harness.ReplayWith([.. trace, "--provision", "0.5", "--call-cost", "0"]).Json;

        // The steady demand and the tower it gives are printed; 200x is enough for every request, 0.5x is not.
        Assert.Matches(@"steady demand [\d.]+ inferences/s .* towers at 200x: [\d.]+ users/s per host", stdout);
        Assert.Equal(unbounded.Long("fallbacks"), ample.GetProperty("total").Long("fallbacks"));
        Assert.True(scarce.GetProperty("total").Long("fallbacks") > 0.05 * unbounded.Long("requests"), "half the steady demand must leave requests unserved");
        double userMs = ample.GetProperty("timeline").GetProperty("towers").GetProperty("model").GetProperty("userMs").GetDouble();
        double scarceUserMs = scarce.GetProperty("timeline").GetProperty("towers").GetProperty("model").GetProperty("userMs").GetDouble();
        Assert.InRange(scarceUserMs / userMs, 399.9, 400.1); // the per-user cost is inversely proportional to the multiple (no fixed cost), up to a tick
    }

    [Fact]
    public void Finite_towers_replay_on_one_thread_and_say_why()
    {
        var (_, stdout) = _harness.ReplayWith("--synthetic", "--users", "500", "--duration", "3h", "--threads", "3", "--user-cost", "1ms");
        Assert.Contains("1 thread: the towers have finite capacity, so the users of a host share its queue", stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(new[] { "--provision", "1.5", "--user-cost", "1ms" }, "Give the towers' capacity one way")]
    [InlineData(new[] { "--call-cost", "5ms" }, "--call-cost is part of a finite tower")]
    [InlineData(new[] { "--provision", "0" }, "--provision: '0' is not a positive number")]
    [InlineData(new[] { "--provision", "2", "--sweep-ttl", "1m,5m" }, "Events, finite towers and the time series belong to one replay")]
    public void Bad_capacity_options_are_usage_errors(string[] options, string message)
    {
        var (code, _, stderr) = ReplayHarness.Run(["--synthetic", "--users", "100", "--duration", "3h", .. options]);
        Assert.Equal(2, code);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void An_unreachable_throughput_names_the_model_and_the_fix()
    {
        var (code, _, stderr) = ReplayHarness.Run("--synthetic", "--users", "100", "--duration", "3h", "--tower-throughput", "100000", "--call-cost", "1s");
        Assert.Equal(3, code);
        Assert.Contains("Model 'model': a throughput of 100000.0 users/s per host is not reachable", stderr, StringComparison.Ordinal);
    }
}
