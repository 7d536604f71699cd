using ERCache.Internal;
using ERCache.Models;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

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

    /// <summary>The regional tier's settings, used when a regional store is registered.</summary>
    public RegionalOptions Regional { get; set; } = new();

    /// <summary>Local snapshots of the tiers, for a warm restart (off unless a directory is set).</summary>
    public SnapshotOptions Snapshots { get; set; } = new();

    /// <summary>What did not bind from configuration (unknown keys, values of the wrong type), by path; reported by
    /// the validator ahead of anything else.</summary>
    internal List<BindingError> BindingErrors { get; } = [];

    /// <summary>
    /// Binds the <c>ERCache</c> section and validates it, for use without dependency injection (with it,
    /// <c>AddERCache()</c> does the same). Every problem is reported at once, by path: values that do not convert
    /// (<c>"Timeout": "abc"</c>, a <c>Capacity</c> beyond <see cref="int"/>), keys that match no setting (a
    /// misspelled <c>Capcity</c>), durations written as bare numbers (<c>"Ttl": 60</c> would mean 60 days), and every
    /// rule <c>ERCacheOptionsValidator</c> checks.
    /// </summary>
    /// <param name="section">The section to bind (usually <c>configuration.GetSection("ERCache")</c>).</param>
    /// <param name="sectionPath">The path named in messages; the section's own path when null.</param>
    /// <param name="modelSections">Per-model subsections that adapter packages read themselves (ERCache.OnnxRuntime's
    /// <c>Onnx</c>, say); any other key a model does not know is an error.</param>
    /// <exception cref="OptionsValidationException">Something did not bind or is invalid; the message names each.</exception>
    public static ERCacheOptions FromConfiguration(IConfiguration section, string? sectionPath = null, IReadOnlyCollection<string>? modelSections = null)
    {
        ArgumentNullException.ThrowIfNull(section);
        string path = sectionPath ?? (section as IConfigurationSection)?.Path ?? DefaultSectionPath;
        var options = new ERCacheOptions();
        ERCacheConfigurationBinder.Bind(section, path, options, modelSections ?? []);
        new ERCacheOptionsValidator(path).ThrowIfInvalid(options);
        return options;
    }
}
