using ERCache.Replay.Replay;

namespace ERCache.Replay.Tests;

/// <summary>The moving embeddings of <c>--drift</c>, the drift the replay reports, refresh ahead and the TTL
/// recommendation, on traces small enough to work out by hand.</summary>
public sealed class DriftTests : IDisposable
{
    private const int Dimensions = 8;
    private readonly ReplayHarness _harness = new();

    public void Dispose() => _harness.Dispose();

    /// <summary>The drift between user <paramref name="user"/>'s vectors <paramref name="gapMs"/> apart, from the model's
    /// definition rather than its vectors: 1 − the mean over planes of cos(ω Δ).</summary>
    private static double ByDefinition(DriftingEmbedding embedding, long user, long gapMs)
    {
        double sum = 0;
        for (int m = 0; m < Dimensions / 2; m++)
        {
            sum += Math.Cos(embedding.Plane(user, m).Speed * gapMs);
        }

        return 1 - (sum / (Dimensions / 2));
    }

    private static double DriftBetween(DriftingEmbedding embedding, long user, long fromMs, long toMs)
    {
        var a = new float[Dimensions];
        var b = new float[Dimensions];
        embedding.Fill(user, fromMs, a);
        embedding.Fill(user, toMs, b);
        return DriftingEmbedding.Drift(a, b);
    }

    [Fact]
    public void Vectors_are_unit_length_deterministic_and_drift_as_their_definition_says()
    {
        var embedding = new DriftingEmbedding(0.05);
        var row = new float[Dimensions];
        var again = new float[Dimensions];
        embedding.Fill(42, 123_456, row);
        new DriftingEmbedding(0.05).Fill(42, 123_456, again);
        Assert.Equal(row, again);
        Assert.Equal(1, Math.Sqrt(row.Sum(v => (double)v * v)), 5);

        foreach (long gap in new long[] { 1_000, 30_000, 600_000, 3_600_000 })
        {
            Assert.Equal(ByDefinition(embedding, 42, gap), DriftBetween(embedding, 42, 5_000, 5_000 + gap), 5);
        }
    }

    [Fact]
    public void The_mean_drift_over_users_one_hour_apart_is_the_rate()
    {
        var embedding = new DriftingEmbedding(0.05);
        const int Users = 20_000;
        double hour = 0, tenMinutes = 0;
        for (long u = 0; u < Users; u++)
        {
            hour += ByDefinition(embedding, u, 3_600_000);
            tenMinutes += ByDefinition(embedding, u, 600_000);
        }

        // E[1 − cos(ωΔ)] over Cauchy(0, γ) speeds is 1 − exp(−γΔ); each user's value is bounded by 2, so the mean of
        // 20,000 users is within a few thousandths.
        Assert.Equal(0.05, hour / Users, 2);
        Assert.Equal(embedding.ExpectedDrift(TimeSpan.FromMinutes(10)), tenMinutes / Users, 2);
        Assert.Equal(1 - Math.Pow(0.95, 1.0 / 6), embedding.ExpectedDrift(TimeSpan.FromMinutes(10)), 12);
    }

    [Fact]
    public void The_replay_reports_the_drift_of_every_served_vector_against_fresh_inference_at_that_moment()
    {
        var embedding = new DriftingEmbedding(0.2);
        var r = _harness.Replay("""
            ts,user
            0,1
            30000,1
            45000,2
            70000,1
            """, "--direct-ttl", "1m", "--dimensions", "8", "--drift", "0.2").GetProperty("total");

        // 0: fresh (drift 0); 30 s: direct, the vector of 0 s served at 30 s; 45 s: fresh; 70 s: expired, fresh.
        double d = ByDefinition(embedding, 1, 30_000);
        Assert.True(d > 1e-6, "the trace's hit must have drifted");
        Assert.Equal(d / 4, r.GetProperty("driftMean").GetDouble(), 8);
        Assert.Equal(0, r.GetProperty("driftP50").GetDouble(), 8);
        Assert.Equal(d, r.GetProperty("driftP99").GetDouble(), 7);
        Assert.Equal(0, r.Long("refreshes"));
        Assert.Equal(3, r.Long("requestPathInferences"));
    }

    [Fact]
    public void Refresh_ahead_replaces_a_hot_users_vector_in_the_background_and_the_replay_counts_it_apart()
    {
        var embedding = new DriftingEmbedding(0.2);
        var r = _harness.Replay("""
            ts,user
            0,1
            30000,1
            70000,1
            """, "--direct-ttl", "1m", "--dimensions", "8", "--drift", "0.2", "--refresh-ahead", "0.5").GetProperty("total");

        // 30 s: a hit at half the TTL, served as of 0 s, and refreshed at 30 s; 70 s: a hit on the refreshed vector (40 s
        // old) instead of an expiry miss, refreshed again (40 s is past half the TTL too).
        Assert.Equal(2, r.Long("directHits"));
        Assert.Equal(3, r.Long("inferences"));
        Assert.Equal(2, r.Long("refreshes"));
        Assert.Equal(1, r.Long("requestPathInferences"));
        Assert.Equal(0, r.GetProperty("computeSaved").GetDouble(), 10); // two hits, less the two refreshes
        double first = ByDefinition(embedding, 1, 30_000), second = ByDefinition(embedding, 1, 40_000);
        Assert.Equal((first + second) / 3, r.GetProperty("driftMean").GetDouble(), 8);
    }

    [Fact]
    public void The_recommended_ttl_is_the_longest_whose_p99_drift_stays_under_the_bound()
    {
        string trace = _harness.WriteTrace("""
            ts,user
            0,1
            20000,1
            50000,1
            """);
        var embedding = new DriftingEmbedding(0.2);
        double at20 = ByDefinition(embedding, 1, 20_000), at50 = ByDefinition(embedding, 1, 50_000);
        Assert.True(at50 > at20);

        // TTL 30 s: hit at 20 s (drift at20), miss at 50 s. TTL 1 m: hits at 20 s and 50 s (p99 = at50).
        double bound = (at20 + at50) / 2;
        var (code, stdout, stderr) = ReplayHarness.Run(
            "--trace", trace, "--dimensions", "8", "--drift", "0.2", "--recommend-ttl", "--max-drift", bound.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
            "--sweep-ttl", "10s,30s,1m");
        Assert.True(code == 0, stderr);
        var row = stdout.Split('\n').Single(l => l.StartsWith("| model |", StringComparison.Ordinal));
        Assert.Contains("| 30s | 33.3 % |", row, StringComparison.Ordinal);

        var (refused, _, error) = ReplayHarness.Run("--trace", trace, "--recommend-ttl", "--max-drift", "0.01");
        Assert.Equal(ReplayCommand.BadUsage, refused);
        Assert.Contains("--recommend-ttl needs --drift", error, StringComparison.Ordinal);
        Assert.Contains("--drift must be a number between 0 and 1", ReplayHarness.Run("--trace", trace, "--drift", "1.5").Stderr, StringComparison.Ordinal);
    }
}
