namespace ERCache;

/// <summary>
/// The <c>ERCache</c> configuration section: one entry per model under <c>Models</c>.
/// </summary>
public sealed class ERCacheOptions
{
    /// <summary>The default configuration section path, <c>ERCache</c>.</summary>
    public const string DefaultSectionPath = "ERCache";

    /// <summary>Per-model settings, keyed by model name (case-insensitive, like configuration keys).</summary>
    public Dictionary<string, ModelOptions> Models { get; set; } = new(StringComparer.OrdinalIgnoreCase);
}
