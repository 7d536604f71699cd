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
    /// applied whole, or logged and ignored.
    /// </summary>
    internal void FollowConfiguration(IConfiguration section, string sectionPath, IReadOnlyCollection<string> modelSections) =>
        _configurationSubscription = ChangeToken.OnChange(section.GetReloadToken, () =>
        {
            var options = new ERCacheOptions();
            try
            {
                ERCacheConfigurationBinder.Bind(section, sectionPath, options, modelSections);
            }
            catch (Exception ex)
            {
                Log.ReloadFailed(_logger, ex);
                return;
            }

            ApplyReload(options);
        });

    private void OnOptionsChanged(ERCacheOptions options, string? name)
    {
        if (name is not null && name != Options.DefaultName)
        {
            return;
        }

        ApplyReload(options);
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
        }
        catch (Exception ex) when (ex is OptionsValidationException or InvalidOperationException)
        {
            Log.ReloadRejected(_logger, ex.Message); // nothing was swapped: the running policies stay in force
        }
        catch (Exception ex)
        {
            Log.ReloadFailed(_logger, ex);
        }
    }
}
