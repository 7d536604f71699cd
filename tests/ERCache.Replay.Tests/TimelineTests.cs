using System.Text.Json;
using ERCache.Replay.Replay;

namespace ERCache.Replay.Tests;

/// <summary>Events on the timeline, worked out by hand: version changes, restarts, deletions, outages.</summary>
public sealed class TimelineTests : IDisposable
{
    // Direct TTL 10 min, failover TTL 1 h: every count below follows from these and the event times.
    private static readonly string[] Tiers = ["--direct-ttl", "10m", "--failover-ttl", "1h", "--dimensions", "4"];
    private readonly ReplayHarness _harness = new();

    public void Dispose() => _harness.Dispose();

    /// <summary>Users 1-3 at 0 s and at 7 min.</summary>
    private string ThreeUsers() => _harness.WriteTrace("ts,user\n0,1\n0,2\n0,3\n420000,1\n420000,2\n420000,3\n");

    [Fact]
    public void A_version_change_empties_both_tiers_so_an_outage_after_it_finds_no_failover_vector()
    {
        // Direct TTL 1 min: at 7 min every request infers. Without the version change, the outage at 6-8 min is
        // absorbed by the failover tier (written at 0 s); after it, the new version has no vector in either tier.
        string[] shortDirect = ["--direct-ttl", "1m", "--failover-ttl", "1h", "--dimensions", "4"];
        var outage = _harness.ReplayWith(["--trace", ThreeUsers(), .. shortDirect, "--event", "outage@6m+2m"]).Json.GetProperty("total");
        Assert.Equal([6, 0, 6, 3, 3, 0], outage.Counts()); // 7 min: 3 failed inferences, 3 failover hits

        var both = _harness.ReplayWith(["--trace", ThreeUsers(), .. shortDirect, "--event", "outage@6m+2m", "--event", "version@6m"]).Json.GetProperty("total");
        Assert.Equal([6, 0, 6, 3, 0, 3], both.Counts());

        // Direct TTL 10 min: without an event 7 min is direct; after a version change it infers again.
        Assert.Equal([6, 3, 3, 0, 0, 0], _harness.ReplayWith(["--trace", ThreeUsers(), .. Tiers]).Json.GetProperty("total").Counts());
        Assert.Equal([6, 0, 6, 0, 0, 0], _harness.ReplayWith(["--trace", ThreeUsers(), .. Tiers, "--event", "version@6m"]).Json.GetProperty("total").Counts());
    }

    [Fact]
    public void A_rolled_version_change_reaches_the_hosts_one_by_one()
    {
        // Two hosts, sticky routing; the change rolls over 4 min from 6 min: host 0 at 6 min, host 1 at 8 min. At 7 min
        // host 1's users are still on the old version (direct hits); host 0's infer.
        long[] users = [.. Enumerable.Range(1, 40).Select(u => (long)u)];
        int onHost1 = users.Count(u => Shards.StickyHost(u, 2) == 1);
        Assert.InRange(onHost1, 1, users.Length - 1);
        string trace = _harness.WriteTrace("ts,user\n" + string.Concat(new[] { 0, 420_000 }.SelectMany(ts => users.Select(u => $"{ts},{u}\n"))));
        var total = _harness.ReplayWith(["--trace", trace, .. Tiers, "--hosts", "2", "--routing", "sticky", "--event", "version@6m+4m"]).Json.GetProperty("total");
        Assert.Equal(onHost1, total.Long("directHits"));
        Assert.Equal(users.Length + (users.Length - onHost1), total.Long("inferences"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_restarted_host_loses_its_local_tiers_and_recovers_them_from_a_regional_store(bool regional)
    {
        // Two hosts, sticky routing; host 0 restarts at 6 min. At 7 min host 0's users miss their local tiers: without
        // a store they are inferred again, with one they are regional hits. Host 1's users are direct hits either way.
        long[] users = [.. Enumerable.Range(1, 40).Select(u => (long)u)];
        int onHost0 = users.Count(u => Shards.StickyHost(u, 2) == 0);
        string trace = _harness.WriteTrace("ts,user\n" + string.Concat(new[] { 0, 420_000 }.SelectMany(ts => users.Select(u => $"{ts},{u}\n"))));
        string[] store = regional ? ["--regional", "memory"] : [];
        var json = _harness.ReplayWith(["--trace", trace, .. Tiers, "--hosts", "2", "--routing", "sticky", "--event", "restart@6m", .. store]).Json;
        var total = json.GetProperty("total");
        Assert.Equal(users.Length - onHost0, total.Long("directHits"));
        Assert.Equal(regional ? onHost0 : 0, total.Long("regionalHits"));
        Assert.Equal(users.Length + (regional ? 0 : onHost0), total.Long("inferences"));

        // The event's summary for the restarted host alone: only its users' requests in the 5 minutes after.
        var restart = json.GetProperty("timeline").GetProperty("events")[0];
        Assert.Equal(users.Length, restart.GetProperty("after5m").Long("requests"));
        Assert.Equal(onHost0, restart.GetProperty("restartedHost").GetProperty("after5m").Long("requests"));
        // The trace ends at 7 min, so the 5 minutes after are cut to the 7 windows it has (6:00 to 7:10): 70 s.
        Assert.Equal(regional ? 0 : onHost0 / 70.0, restart.GetProperty("restartedHost").GetProperty("after5m").GetProperty("inferenceRate").GetDouble(), 9);
    }

    [Fact]
    public void With_snapshots_a_restarted_host_serves_its_users_direct_from_what_it_wrote_when_it_stopped()
    {
        // As above without a store: host 0 restarts at 6 min; with --snapshots it loads what it wrote, so at 7 min its
        // users are direct hits (written at 0 s, 7 min old: within the 10-min TTL), as if it had not restarted.
        long[] users = [.. Enumerable.Range(1, 40).Select(u => (long)u)];
        string trace = _harness.WriteTrace("ts,user\n" + string.Concat(new[] { 0, 420_000 }.SelectMany(ts => users.Select(u => $"{ts},{u}\n"))));
        var json = _harness.ReplayWith(["--trace", trace, .. Tiers, "--hosts", "2", "--routing", "sticky", "--event", "restart@6m", "--snapshots"]).Json;
        Assert.Equal([80, 40, 40, 0, 0, 0], json.GetProperty("total").Counts());
        var host = json.GetProperty("timeline").GetProperty("events")[0].GetProperty("restartedHost");
        Assert.Equal(0, host.GetProperty("after5m").GetProperty("inferenceRate").GetDouble());
    }

    [Fact]
    public void Warming_ahead_of_a_version_change_makes_the_warmed_users_direct_hits_of_the_new_version()
    {
        // Users 1-3 at 0 s and 7 min; the version changes at 6 min. Cold, the 7-min requests infer (above). Warmed
        // from 5 min (--warm-ahead 1m), the next version's vectors exist by the change: at 7 min they are direct hits;
        // the warming's three inferences are background ones.
        var json = _harness.ReplayWith(["--trace", ThreeUsers(), .. Tiers, "--event", "version@6m", "--warm-ahead", "1m"]).Json;
        var total = json.GetProperty("total");
        Assert.Equal([6, 3, 6, 0, 0, 0], total.Counts()); // 3 request-path inferences at 0 s, 3 warming ones
        Assert.Equal(3, total.Long("refreshes"));
    }

    [Fact]
    public void A_gradual_switch_names_the_next_version_at_the_event_and_warms_it_for_the_users_still_to_switch()
    {
        // 200 users at 0 s and at 7 min; the switch starts at 6 min and takes 2 min (half the users, by hash, have
        // switched at 7 min). The rollout is named at 6 min, and its warming infers the next version for every resident
        // user in the background on the idle tower: at 7 min the switched users are direct hits of it, the others of
        // the old version. Without warming or a switch, the version change at 6 min makes all 200 infer again.
        long[] users = [.. Enumerable.Range(1, 200).Select(u => (long)u)];
        string trace = _harness.WriteTrace("ts,user\n" + string.Concat(new[] { 0, 420_000 }.SelectMany(ts => users.Select(u => $"{ts},{u}\n"))));
        var total = _harness.ReplayWith(["--trace", trace, .. Tiers, "--event", "version@6m", "--switch-over", "2m"]).Json.GetProperty("total");
        Assert.Equal([400, 200, 400, 0, 0, 0], total.Counts());
        Assert.Equal(200, total.Long("refreshes"));
        Assert.Equal([400, 0, 400, 0, 0, 0], _harness.ReplayWith(["--trace", trace, .. Tiers, "--event", "version@6m"]).Json.GetProperty("total").Counts());
    }

    [Fact]
    public void A_deletion_through_one_host_leaves_the_other_hosts_copies_to_be_served()
    {
        // Two hosts sharing a store, sticky routing; every user is deleted at 6 min through host 0 (RemoveAsync). At
        // 7 min host 0's users are inferred again (their tiers and the store were cleared); host 1 still holds its
        // users' vectors and serves them: each of those requests is counted as served although deleted.
        long[] users = [.. Enumerable.Range(1, 40).Select(u => (long)u)];
        int onHost1 = users.Count(u => Shards.StickyHost(u, 2) == 1);
        string trace = _harness.WriteTrace("ts,user\n" + string.Concat(new[] { 0, 420_000 }.SelectMany(ts => users.Select(u => $"{ts},{u}\n"))));
        var json = _harness.ReplayWith(["--trace", trace, .. Tiers, "--hosts", "2", "--routing", "sticky", "--regional", "memory", "--event", "delete@6m:100%"]).Json;
        Assert.Equal(onHost1, json.GetProperty("total").Long("directHits"));
        Assert.Equal(2 * users.Length - onHost1, json.GetProperty("total").Long("inferences"));
        var deletion = json.GetProperty("timeline").GetProperty("events")[0];
        Assert.Equal(onHost1, deletion.Long("servedAlthoughDeleted"));
    }

    [Fact]
    public void A_deletion_picks_the_same_share_of_users_in_every_run()
    {
        var deleted = Enumerable.Range(1, 100_000).Count(u => ShardReplay.IsDeleted(u, 0.1));
        Assert.InRange(deleted, 9_500, 10_500);
        Assert.Equal(deleted, Enumerable.Range(1, 100_000).Count(u => ShardReplay.IsDeleted(u, 0.1)));
        Assert.All(Enumerable.Range(1, 1000), u => Assert.True(ShardReplay.IsDeleted(u, 1.0)));
    }

    [Fact]
    public void Events_replay_the_same_on_one_and_three_threads()
    {
        // Unbounded towers and tiers that never fill: users do not interact, so shards give the one-thread answer,
        // time series and event summaries included.
        string[] args = ["--synthetic", "--users", "3000", "--duration", "3h", "--seed", "8", "--hosts", "2", "--routing", "sticky",
            "--event", "version@1h+10m", "--event", "restart@90m:1", "--event", "delete@2h:5%", "--event", "outage@150m+5m"];
        var one = _harness.ReplayWith([.. args, "--threads", "1"]).Json;
        var three = _harness.ReplayWith([.. args, "--threads", "3"]).Json;
        Assert.Equal(3, three.Long("threads"));
        Assert.Equal(one.GetProperty("timeline").GetRawText(), three.GetProperty("timeline").GetRawText());
        foreach (var property in one.GetProperty("total").EnumerateObject().Where(p => p.Name != "tiers")) // tier bytes differ by shard (ThreadsTests)
        {
            Assert.Equal(property.Value.GetRawText(), three.GetProperty("total").GetProperty(property.Name).GetRawText());
        }
    }

    [Fact]
    public void The_time_series_adds_up_to_the_totals_and_the_summary_reads_it()
    {
        var json = _harness.ReplayWith("--synthetic", "--users", "3000", "--duration", "3h", "--seed", "2", "--direct-ttl", "10m", "--event", "version@1h").Json;
        var total = json.GetProperty("total");
        var windows = json.GetProperty("timeline").GetProperty("series").GetProperty("model").EnumerateArray().ToArray();
        Assert.Equal(total.Long("requests"), windows.Sum(w => w.Long("requests")));
        Assert.Equal(total.Long("inferences"), windows.Sum(w => w.Long("requestPathInferences") + w.Long("backgroundInferences")));
        Assert.Equal(total.Long("directHits"), windows.Sum(w => w.Long("direct")));
        Assert.Equal(total.Long("fallbacks"), windows.Sum(w => w.Long("fallback")));
        Assert.Equal(10, windows[1].GetProperty("startSeconds").GetDouble());

        // The 5 minutes after the change: windows 360..389 (10 s each); nothing is direct there that was written
        // before the change, so inferences rise above the 30 minutes before.
        var e = json.GetProperty("timeline").GetProperty("events")[0];
        long requests = windows[360..390].Sum(w => w.Long("requests"));
        long inferences = windows[360..390].Sum(w => w.Long("requestPathInferences") + w.Long("backgroundInferences"));
        Assert.Equal(requests, e.GetProperty("after5m").Long("requests"));
        Assert.Equal(inferences / 300.0, e.GetProperty("after5m").GetProperty("inferenceRate").GetDouble(), 9);
        Assert.True(e.GetProperty("after5m").GetProperty("inferenceRate").GetDouble() > 1.5 * e.GetProperty("steadyInferenceRate").GetDouble());
        Assert.True(e.GetProperty("recoverySeconds").GetDouble() > 60);
    }

    [Fact]
    public void Events_come_from_a_config_files_replay_section_and_the_outputs_are_written()
    {
        string config = _harness.WriteTrace("""
            { "ERCache": { "Models": { "model": { "Dimensions": 4, "Direct": { "Ttl": "00:10:00" }, "Failover": { "Ttl": "01:00:00" } } } },
              "Replay": { "Events": [ "version@6m" ], "Window": "30s" } }
            """, "events.json");
        string csv = _harness.Path("series.csv"), svg = _harness.Path("timeline.svg");
        var (json, stdout) = _harness.ReplayWith("--trace", ThreeUsers(), "--config", config, "--series", csv, "--chart", svg);
        Assert.Equal([6, 0, 6, 0, 0, 0], json.GetProperty("total").Counts());
        Assert.Contains("| version at 6m |", stdout, StringComparison.Ordinal);
        Assert.Equal(30, json.GetProperty("timeline").GetProperty("windowSeconds").GetDouble());
        string[] lines = File.ReadAllLines(csv);
        Assert.StartsWith("model,startSeconds,requests,requestPathInferences,backgroundInferences,direct,regional,fresh,failover,fallback", lines[0], StringComparison.Ordinal);
        Assert.Equal(6, lines.Skip(1).Sum(l => long.Parse(l.Split(',')[2], System.Globalization.CultureInfo.InvariantCulture)));
        Assert.Contains("version at 6m", File.ReadAllText(svg), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("reload@1h", "it does not start with version@, restart@, delete@ or outage@")]
    [InlineData("outage@1h", "an outage needs a length")]
    [InlineData("delete@1h", "a deletion needs a share of the users")]
    [InlineData("delete@1h:150%", "'150%' is not a share of users")]
    [InlineData("restart@1h:x", "'x' is not a host index")]
    [InlineData("version@soon", "'soon' is not a time")]
    public void A_bad_event_is_a_usage_error_showing_the_syntax(string text, string message)
    {
        var (code, _, stderr) = ReplayHarness.Run("--synthetic", "--users", "100", "--duration", "3h", "--event", text);
        Assert.Equal(2, code);
        Assert.Contains($"--event: Event '{text}': {message}", stderr, StringComparison.Ordinal);
        Assert.Contains(ReplayEvent.Syntax, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void An_event_naming_a_missing_host_or_model_is_refused()
    {
        var (code, _, stderr) = ReplayHarness.Run("--synthetic", "--users", "100", "--duration", "3h", "--event", "restart@10m:3");
        Assert.Equal(3, code);
        Assert.Contains("restarts host 3, but the replay has 1 host(s)", stderr, StringComparison.Ordinal);
        (code, _, stderr) = ReplayHarness.Run("--synthetic", "--users", "100", "--duration", "3h", "--event", "version@10m:ranker");
        Assert.Equal(3, code);
        Assert.Contains("names model 'ranker', which the trace does not use", stderr, StringComparison.Ordinal);
    }
}
