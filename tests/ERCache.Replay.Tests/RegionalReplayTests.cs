namespace ERCache.Replay.Tests;

/// <summary>Hosts sharing a regional store: with random routing they must infer exactly as often as one host, because
/// every inference is visible to every host from the next instant on (local direct hits plus regional hits equal one
/// host's direct hits).</summary>
public sealed class RegionalReplayTests : IDisposable
{
    private static readonly string[] Synthetic = ["--synthetic", "--users", "600", "--models", "a,b", "--dimensions", "4"];

    private readonly ReplayHarness _harness = new();

    [Theory]
    [InlineData("1")]
    [InlineData("3")]
    public void Random_routing_over_a_shared_store_infers_exactly_as_often_as_one_host(string threads)
    {
        var (one, _) = _harness.ReplayWith([.. Synthetic, "--hosts", "1", "--threads", threads]);
        var (alone, _) = _harness.ReplayWith([.. Synthetic, "--hosts", "8", "--routing", "random", "--threads", threads]);
        var (shared, stdout) = _harness.ReplayWith([.. Synthetic, "--hosts", "8", "--routing", "random", "--regional", "memory", "--threads", threads]);

        foreach (string model in new[] { "a", "b" })
        {
            var single = one.GetProperty("models").GetProperty(model);
            var many = shared.GetProperty("models").GetProperty(model);
            Assert.Equal(single.Long("inferences"), many.Long("inferences"));
            Assert.Equal(single.Long("directHits"), many.Long("directHits") + many.Long("regionalHits"));
            Assert.True(many.Long("regionalHits") > 0);
            Assert.Equal(0, single.Long("regionalHits"));
        }

        Assert.Equal(one.GetProperty("total").GetProperty("computeSaved").GetDouble(), shared.GetProperty("total").GetProperty("computeSaved").GetDouble(), 12);
        Assert.True(alone.GetProperty("total").Long("inferences") > one.GetProperty("total").Long("inferences"), "without a store, random routing should infer more");
        var traffic = shared.GetProperty("regional");
        Assert.Equal(shared.GetProperty("total").Long("inferences") - shared.GetProperty("total").Long("inferenceFailures"), traffic.Long("valuesWritten"));
        Assert.True(traffic.Long("writeGroups") <= traffic.Long("valuesWritten"));
        Assert.Contains("regional hits", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Failures_are_rescued_by_another_hosts_vector()
    {
        string[] failing = [.. Synthetic, "--failure-rate", "0.2", "--hosts", "8", "--routing", "random"];
        var (alone, _) = _harness.ReplayWith(failing);
        var (shared, _) = _harness.ReplayWith([.. failing, "--regional", "memory"]);

        Assert.True(
            shared.GetProperty("total").Long("fallbacks") < alone.GetProperty("total").Long("fallbacks"),
            "a shared store should turn some fallbacks into failover hits");
    }

    [Fact]
    public void A_bad_regional_option_names_the_choices()
    {
        var (code, _, stderr) = ReplayHarness.Run("--synthetic", "--regional", "cassandra");

        Assert.Equal(ReplayCommand.BadUsage, code);
        Assert.Contains("--regional must be memory or redis=HOST:PORT (got 'cassandra').", stderr, StringComparison.Ordinal);
    }

    public void Dispose() => _harness.Dispose();
}
