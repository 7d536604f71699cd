using ERCache.Internal;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace ERCache;

// Configuration reloads: one path for the options monitor and for a followed section; each reload is applied whole
// by the registry, or logged and ignored, never thrown at the code that reloaded.
public sealed partial class EmbeddingCache
{
    /// <summary>
    /// Follows a configuration section directly (what <c>AddERCache()</c> uses instead of the options monitor, whose
    /// validation would throw out of the configuration reload): each reload is bound with the checked binder and
    /// applied whole, or logged and ignored. <paramref name="boundFrom"/> is the section's reload token taken when the
    /// options this cache was built from were bound: a reload since then (the host validating its options at start,
    /// then building the cache) came before this subscription, so it is applied here.
    /// </summary>
    internal void FollowConfiguration(IConfiguration section, string sectionPath, IReadOnlyCollection<string> modelSections, IChangeToken? boundFrom)
    {
        _configurationSubscription = ChangeToken.OnChange(section.GetReloadToken, () => ReloadSection(section, sectionPath, modelSections));
        if (boundFrom?.HasChanged == true)
        {
            ReloadSection(section, sectionPath, modelSections);
        }
    }

    /// <summary>Binds the section as it is now and applies it. Under the reload lock, so that of two reloads racing (the
    /// one caught up at subscription and one just raised) the later reading of the configuration is applied last.</summary>
    private void ReloadSection(IConfiguration section, string sectionPath, IReadOnlyCollection<string> modelSections)
    {
        lock (_reloadLock)
        {
            var options = new ERCacheOptions();
            try
            {
                ERCacheConfigurationBinder.Bind(section, sectionPath, options, modelSections);
            }
            catch (Exception ex)
            {
                Log.ReloadFailed(_logger, ex);
                Volatile.Write(ref _reloadProblem, $"the last configuration reload could not be bound ({ex.Message}); the previous settings stay in force");
                return;
            }

            ApplyReload(options);
        }
    }

    private void OnOptionsChanged(ERCacheOptions options, string? name)
    {
        if (name is not null && name != Options.DefaultName)
        {
            return;
        }

        lock (_reloadLock)
        {
            ApplyReload(options);
        }
    }

    /// <summary>Why the last reload was not applied (for the health check); null once one is.</summary>
    internal string? ReloadProblem => Volatile.Read(ref _reloadProblem);

    /// <summary>How a connection string appears in a log line: it may hold a password.</summary>
    private const string HiddenSetting = "(not logged: it may hold a password)";

    /// <summary>The settings read once, when the cache is built (<c>Snapshots</c>, and <c>Regional</c> but for the
    /// settings a reload applies: see <see cref="Regional.RegionalTier.Apply"/>), as text by their path, so a reload that changes one
    /// can be named.</summary>
    private Dictionary<string, string> BuildTimeSettings(ERCacheOptions options)
    {
        var regional = options.Regional ?? new RegionalOptions();
        var snapshots = options.Snapshots ?? new SnapshotOptions();
        string r = $"{_sectionPath}:Regional", s = $"{_sectionPath}:Snapshots";
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            [$"{r}:ConnectionString"] = regional.ConnectionString ?? "(none)", // compared, never logged (see HiddenSetting)
            [$"{r}:KeyPrefix"] = regional.KeyPrefix ?? "(default)",
            [$"{r}:Invalidation"] = regional.Invalidation ? "true" : "false",
            [$"{s}:Directory"] = snapshots.Directory ?? "(none)",
            [$"{s}:Interval"] = snapshots.Interval?.ToString("c", System.Globalization.CultureInfo.InvariantCulture) ?? "(none)",
            [$"{s}:LoadTimeout"] = snapshots.LoadTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture),
            [$"{s}:WriteTimeout"] = snapshots.WriteTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture),
        };
    }

    /// <summary>Logs each setting read once that a reload changed (once per change): it takes effect at a restart.</summary>
    private void WarnOfBuildTimeSettings(ERCacheOptions options)
    {
        var reloaded = BuildTimeSettings(options);
        foreach (var (path, inForce) in _buildTimeSettings)
        {
            if (reloaded[path] != inForce && reloaded[path] != _reloadedSettings[path])
            {
                bool hidden = path.EndsWith(":ConnectionString", StringComparison.Ordinal);
                Log.ReloadSettingIgnored(_logger, path, hidden ? HiddenSetting : inForce, hidden ? HiddenSetting : reloaded[path]);
            }
        }

        _reloadedSettings = reloaded; // the same change is not logged again at the next reload
    }

    /// <summary>Applies a reload whole, or logs why it cannot be and leaves the running policies in force; never throws
    /// into the code that reloaded configuration.</summary>
    private void ApplyReload(ERCacheOptions options)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            return;
        }

        try
        {
            _registry.Apply(options);
            _regional?.Apply(options.Regional ?? new RegionalOptions());
            WarnOfBuildTimeSettings(options);
            Volatile.Write(ref _reloadProblem, null);
        }
        catch (Exception ex) when (ex is OptionsValidationException or InvalidOperationException)
        {
            Log.ReloadRejected(_logger, ex.Message); // nothing was swapped: the running policies stay in force
            Volatile.Write(ref _reloadProblem, $"the last configuration reload was rejected ({ex.Message}); the previous settings stay in force");
        }
        catch (Exception ex)
        {
            Log.ReloadFailed(_logger, ex);
            Volatile.Write(ref _reloadProblem, $"the last configuration reload failed ({ex.GetType().Name}: {ex.Message}); the previous settings stay in force");
        }
    }
}
