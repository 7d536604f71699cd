using System.Text.Json;
using System.Text.Json.Nodes;

namespace ERCache.Replay.Tests;

/// <summary>
/// With unbounded towers and no events, the discrete-event replay gives exactly what the replay gave before capacity
/// and events were added. Golden/*.json hold that replay's output (commit 2d6e6a3, the last one before the change)
/// for five traces chosen to cover what it does: one model, two models with failures and an outage, evicting tiers in
/// Float16, three hosts sharing a store under random routing, and drift with refresh ahead. Two changes since, both to
/// peak bytes only: an LRU tier's grew by 4 per entry of its capacity (the recent-move stamps that keep hits on the
/// newest quarter off the drain), and every tier's by 1 per bucket of its index (the distance from home that lets a
/// removal shift entries back without reading their keys); every count is as the golden files have it.
/// </summary>
public sealed class UnboundedReplayTests : IDisposable
{
    private readonly ReplayHarness _harness = new();

    public void Dispose() => _harness.Dispose();

    public static TheoryData<string> Golden() => ["basic", "failures", "evicting", "hosts", "drift"];

    [Theory]
    [MemberData(nameof(Golden))]
    public void An_unbounded_replay_equals_the_replay_before_capacity_and_events(string name)
    {
        var golden = JsonNode.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Golden", $"{name}.json")))!;
        string[] args = [.. golden["args"]!.AsArray().Select(a => a!.GetValue<string>())];
        var (json, _) = _harness.ReplayWith(args);

        var expected = golden["result"]!.AsObject();
        var actual = JsonNode.Parse(json.GetRawText())!.AsObject();
        Assert.False(actual.ContainsKey("timeline"), "an unbounded replay without events writes no timeline");
        foreach (var (key, value) in expected)
        {
            Assert.True(JsonNode.DeepEquals(value, actual[key]), $"'{key}' differs:\nexpected {value!.ToJsonString()}\nactual   {actual[key]?.ToJsonString()}");
        }
    }

    [Fact]
    public void A_wide_enough_finite_tower_gives_the_unbounded_counts()
    {
        // A tower a thousand times faster than the trace needs: every call ends within a millisecond, far inside any
        // deadline and before the user asks again, so every request is answered from the same source.
        string[] trace = ["--synthetic", "--users", "1500", "--duration", "3h", "--seed", "4", "--direct-ttl", "2m"];
        var unbounded = _harness.ReplayWith(trace).Json.GetProperty("total");
        var finite = _harness.ReplayWith([.. trace, "--user-cost", "0.001ms", "--call-cost", "0"]).Json.GetProperty("total");
        foreach (string count in new[] { "requests", "inferences", "failoverHits", "fallbacks", "regionalHits" })
        {
            Assert.Equal(unbounded.Long(count), finite.Long(count));
        }

        Assert.Equal(unbounded.Long("directHits"), finite.Long("directHits"));
    }
}
