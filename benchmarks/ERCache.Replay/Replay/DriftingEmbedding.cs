namespace ERCache.Replay.Replay;

/// <summary>
/// Synthetic user embeddings that move over time, deterministically in (user, time), so the replay can say how far a
/// served vector is from the one fresh inference would give at that moment. <c>RATE</c> is the expected drift
/// (1 − cosine similarity) between a user's vectors one hour apart.
/// </summary>
/// <remarks>
/// A user's vector is a point on the unit sphere turning in <c>Dimensions / 2</c> orthogonal planes, each at its own
/// angular speed <c>ω</c> and phase: <c>v(t) = (cos(ω₁t + φ₁), sin(ω₁t + φ₁), …) / √planes</c>. The cosine similarity
/// of <c>v(t)</c> and <c>v(t + Δ)</c> is then the mean of <c>cos(ω Δ)</c> over the planes. The speeds are drawn per
/// user and plane from a Cauchy distribution of scale <c>γ</c>, whose characteristic function gives
/// <c>E[cos(ω Δ)] = exp(−γ |Δ|)</c>: the expected drift after <c>Δ</c> is <c>1 − exp(−γ Δ)</c>, linear for short gaps
/// like a random walk, and <c>γ = −ln(1 − RATE)</c> per hour makes it <c>RATE</c> at one hour. Heavy tails give some
/// users planes that turn fast (a user whose interests change) and most planes that barely move, so percentiles over
/// users are wider than the mean. Speeds and phases come from a hash of (user, plane): nothing is stored.
/// </remarks>
internal sealed class DriftingEmbedding
{
    private const double MsPerHour = 3_600_000;
    private readonly double _gammaPerMs;

    /// <param name="driftPerHour">Expected drift between vectors one hour apart, in (0, 1).</param>
    public DriftingEmbedding(double driftPerHour)
    {
        if (!(driftPerHour is > 0 and < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(driftPerHour), driftPerHour, "The drift per hour must be between 0 and 1 (exclusive).");
        }

        DriftPerHour = driftPerHour;
        _gammaPerMs = -Math.Log(1 - driftPerHour) / MsPerHour;
    }

    public double DriftPerHour { get; }

    /// <summary>The expected drift between a user's vectors <paramref name="gap"/> apart: <c>1 − exp(−γ gap)</c>.</summary>
    public double ExpectedDrift(TimeSpan gap) => 1 - Math.Exp(-_gammaPerMs * gap.TotalMilliseconds);

    /// <summary>Writes user <paramref name="user"/>'s vector at <paramref name="timeMs"/> (ms since the trace began).</summary>
    public void Fill(long user, long timeMs, Span<float> row)
    {
        int planes = row.Length / 2;
        if (planes == 0)
        {
            row.Fill(1); // one dimension cannot turn: it never drifts
            return;
        }

        double scale = 1 / Math.Sqrt(planes);
        for (int m = 0; m < planes; m++)
        {
            var (speed, phase) = Plane(user, m);
            double angle = Math.IEEERemainder((speed * timeMs) + phase, 2 * Math.PI);
            var (sin, cos) = Math.SinCos(angle);
            row[2 * m] = (float)(cos * scale);
            row[(2 * m) + 1] = (float)(sin * scale);
        }

        if ((row.Length & 1) == 1)
        {
            row[^1] = 0;
        }
    }

    /// <summary>Plane <paramref name="plane"/> of user <paramref name="user"/>: its angular speed (radians per ms, drawn
    /// from Cauchy(0, γ)) and its phase at time zero.</summary>
    internal (double Speed, double Phase) Plane(long user, int plane)
    {
        ulong h = Mix(((ulong)user * 0x9E3779B97F4A7C15UL) ^ (ulong)(plane + 1));
        return (_gammaPerMs * Math.Tan(Math.PI * (Unit(h) - 0.5)), 2 * Math.PI * Unit(Mix(h)));
    }

    /// <summary>1 − cosine similarity, in doubles; a zero vector on either side counts as fully drifted (1).</summary>
    public static double Drift(ReadOnlySpan<float> served, ReadOnlySpan<float> fresh)
    {
        double dot = 0, a = 0, b = 0;
        for (int i = 0; i < served.Length; i++)
        {
            dot += (double)served[i] * fresh[i];
            a += (double)served[i] * served[i];
            b += (double)fresh[i] * fresh[i];
        }

        return a == 0 || b == 0 ? 1 : Math.Clamp(1 - (dot / Math.Sqrt(a * b)), 0, 2);
    }

    /// <summary>A uniform double in (0, 1) from a hash (never 0, so the Cauchy draw stays finite).</summary>
    private static double Unit(ulong h) => ((h >> 11) + 0.5) * (1.0 / (1UL << 53));

    /// <summary>SplitMix64's finaliser.</summary>
    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
