namespace ERCache.Replay.Tests;

/// <summary>Small traces whose counts are worked out by hand from DESIGN.md §2, rule by rule.</summary>
public sealed class RequestRuleTests : IDisposable
{
    // One model, direct TTL 10 s, failover TTL 60 s: every count below follows from these two numbers.
    private static readonly string[] Tiers = ["--direct-ttl", "10s", "--failover-ttl", "60s", "--dimensions", "8"];
    private readonly ReplayHarness _harness = new();

    public void Dispose() => _harness.Dispose();

    [Fact]
    public void A_vector_younger_than_the_direct_ttl_is_a_direct_hit_and_age_equal_to_the_ttl_is_expired()
    {
        var r = _harness.Replay("""
            ts,user
            0,1
            9999,1
            10000,1
            10001,1
            """, Tiers).GetProperty("total");

        // 0: fresh; 9999: direct (age 9.999 s); 10000: age == TTL, expired -> inference (fresh); 10001: direct (age 1 ms).
        Assert.Equal([4, 2, 2, 0, 0, 0], r.Counts());
        Assert.Equal(0.5, r.GetProperty("computeSaved").GetDouble());
        var direct = r.GetProperty("ageBySource").GetProperty("direct");
        Assert.Equal(2, direct.Long("count"));
        Assert.Equal(1, direct.Long("ageP50Ms"));
        Assert.Equal(9999, direct.Long("ageP99Ms"));
    }

    [Fact]
    public void Requests_with_equal_timestamps_are_served_in_file_order()
    {
        var r = _harness.Replay("""
            ts,user
            5,7
            5,8
            5,7
            5,7
            """, Tiers).GetProperty("total");

        // The first 7 and the 8 are inferred together; the repeats of 7 at the same instant are direct hits of age 0.
        Assert.Equal([4, 2, 2, 0, 0, 0], r.Counts());
        Assert.Equal(0, r.GetProperty("ageBySource").GetProperty("direct").Long("ageP99Ms"));
    }

    [Fact]
    public void A_failure_is_served_from_the_failover_tier_while_it_is_younger_than_its_ttl_and_is_a_fallback_after()
    {
        var r = _harness.Replay("""
            ts,user,fail
            0,1,0
            5000,1,1
            30000,1,1
            60000,1,1
            60000,2,1
            """, Tiers).GetProperty("total");

        // 0: fresh. 5000: direct hit (the fail flag is never used: no inference). 30000: direct expired, inference fails,
        // failover entry is 30 s old (< 60 s) -> failover. 60000: fails, failover entry 60 s old == TTL -> fallback.
        // User 2 at 60000: fails with no entry anywhere -> fallback.
        Assert.Equal([5, 1, 4, 3, 1, 2], r.Counts());
        Assert.Equal(30000, r.GetProperty("ageBySource").GetProperty("failover").Long("ageP50Ms"));
        Assert.Equal(0.4, r.GetProperty("fallbackRate").GetDouble());
        Assert.Equal(0.8, r.GetProperty("fallbackRateWithoutCache").GetDouble()); // 4 of 5 rows say inference fails
    }

    [Fact]
    public void A_vector_served_from_failover_is_never_written_back_into_the_direct_tier()
    {
        var r = _harness.Replay("""
            ts,user,fail
            0,1,0
            20000,1,1
            21000,1,0
            22000,1,0
            """, Tiers).GetProperty("total");

        // 20000: failover (age 20 s). 21000: had the failover vector gone to the direct tier this would be a direct
        // hit; it is not, so inference runs (fresh). 22000: direct hit of the 21000 vector (age 1 s).
        Assert.Equal([4, 1, 3, 1, 1, 0], r.Counts());
        Assert.Equal(1000, r.GetProperty("ageBySource").GetProperty("direct").Long("ageP50Ms"));
    }

    [Fact]
    public void Several_models_keep_separate_tiers_and_counts()
    {
        string config = _harness.Path("two-models.json");
        File.WriteAllText(config, """
            { "ERCache": { "Models": {
              "ctr": { "Dimensions": 4, "Direct": { "Ttl": "00:00:10" }, "Failover": { "Ttl": "00:01:00" } },
              "cvr": { "Dimensions": 8, "Direct": { "Ttl": "00:00:02" }, "Failover": { "Ttl": "00:01:00" } } } } }
            """);
        var json = _harness.Replay("""
            ts,user,model,fail
            0,1,ctr,0
            0,1,cvr,0
            5000,1,ctr,0
            5000,1,cvr,1
            """, "--config", config);

        // ctr: fresh, then direct (5 s < 10 s). cvr: fresh, then its 2 s TTL has passed, inference fails -> failover.
        Assert.Equal([2, 1, 1, 0, 0, 0], json.GetProperty("models").GetProperty("ctr").Counts());
        Assert.Equal([2, 0, 2, 1, 1, 0], json.GetProperty("models").GetProperty("cvr").Counts());
        Assert.Equal([4, 1, 3, 1, 1, 0], json.GetProperty("total").Counts());
        Assert.Equal(1, json.GetProperty("models").GetProperty("ctr").GetProperty("tiers").GetProperty("direct").Long("peakEntries"));
        Assert.True(json.GetProperty("models").GetProperty("cvr").GetProperty("tiers").GetProperty("failover").Long("peakBytes") > 8 * sizeof(float));
    }

    [Fact]
    public void A_configured_capacity_bounds_the_tier_and_an_absent_one_is_unbounded()
    {
        const string trace = """
            ts,user
            0,1
            1,2
            2,3
            3,1
            """;
        var bounded = _harness.Replay(trace, [.. Tiers, "--capacity", "2"]).GetProperty("total");
        var unbounded = _harness.Replay(trace, Tiers).GetProperty("total");

        // Capacity 2 (LRU): user 3 evicts user 1, so 1's return is a miss; unbounded, it is a hit.
        Assert.Equal([4, 0, 4, 0, 0, 0], bounded.Counts());
        Assert.Equal([4, 1, 3, 0, 0, 0], unbounded.Counts());
        Assert.Equal(2, bounded.GetProperty("tiers").GetProperty("direct").Long("peakEntries"));
        Assert.Equal(3, unbounded.GetProperty("tiers").GetProperty("direct").Long("peakEntries"));
    }

    [Fact]
    public void Sticky_routing_keeps_a_users_hits_that_random_routing_spreads_over_hosts()
    {
        var lines = Enumerable.Range(0, 400).Select(i => $"{i * 10},{i % 20}");
        string trace = "ts,user\n" + string.Join('\n', lines);
        var one = _harness.Replay(trace, Tiers).GetProperty("total");
        var sticky = _harness.Replay(trace, [.. Tiers, "--hosts", "4", "--routing", "sticky"]).GetProperty("total");
        var random = _harness.Replay(trace, [.. Tiers, "--hosts", "4", "--routing", "random"]).GetProperty("total");

        // 20 users each every 200 ms over 4 s, TTL 10 s: one miss per user per cache that sees the user.
        Assert.Equal(380, one.Long("directHits"));
        Assert.Equal(380, sticky.Long("directHits")); // each user lives on one host
        Assert.InRange(random.Long("directHits"), 400 - 80, 379); // up to 4 misses per user

        // Entries add up over hosts: sticky keeps each user once, random copies users onto several hosts.
        Assert.Equal(20, sticky.GetProperty("tiers").GetProperty("direct").Long("peakEntries"));
        Assert.InRange(random.GetProperty("tiers").GetProperty("direct").Long("peakEntries"), 41, 80);
    }
}
