namespace ERCache;

/// <summary>When the ERCache health check reports <c>Degraded</c> (see <see cref="Health.ERCacheHealthCheck"/>).</summary>
public sealed class ERCacheHealthCheckOptions
{
    /// <summary>A model whose share of fallbacks among its results over <see cref="Window"/> passes this (0 to 1) is
    /// degraded. Default 0.05.</summary>
    public double FallbackShareThreshold { get; set; } = 0.05;

    /// <summary>A model whose share of regional values refused (found in the store but not decoding as the model
    /// expects: another deployment's values under the same key prefix, a damaged store) among those its lookups found
    /// over <see cref="Window"/> passes this (0 to 1) is degraded; judged once at least <see cref="MinimumResults"/>
    /// values were found. Default 0.01.</summary>
    public double RegionalRefusedShareThreshold { get; set; } = 0.01;

    /// <summary>How far back the fallback share and the refused share look. Default one minute.</summary>
    public TimeSpan Window { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>Fewer results (or regional values found) than this in the window are too few to judge a share by (a
    /// handful of requests at start-up must not flap the check). Default 100.</summary>
    public long MinimumResults { get; set; } = 100;

    /// <summary>Throws when a setting is out of range, naming it and its value.</summary>
    internal void Validate()
    {
        if (!(FallbackShareThreshold is >= 0 and <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(FallbackShareThreshold), FallbackShareThreshold, $"ERCacheHealthCheckOptions.FallbackShareThreshold must be between 0 and 1 (got {FallbackShareThreshold}).");
        }

        if (!(RegionalRefusedShareThreshold is >= 0 and <= 1))
        {
            throw new ArgumentOutOfRangeException(nameof(RegionalRefusedShareThreshold), RegionalRefusedShareThreshold, $"ERCacheHealthCheckOptions.RegionalRefusedShareThreshold must be between 0 and 1 (got {RegionalRefusedShareThreshold}).");
        }

        if (Window <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(Window), Window, $"ERCacheHealthCheckOptions.Window must be positive (got {Window}).");
        }

        if (MinimumResults < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(MinimumResults), MinimumResults, $"ERCacheHealthCheckOptions.MinimumResults must be at least 1 (got {MinimumResults}).");
        }
    }
}
